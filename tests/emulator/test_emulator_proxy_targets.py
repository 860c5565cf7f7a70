"""Absolute-form request targets (what a client sends to a plain-HTTP forward proxy) and recent_targets."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import requests
from emulator_helpers import raw_request, signed_request, split_response


def test_absolute_form_target_is_served_and_counted(emulator_api):
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    target = f"{emulator_api.base_url}/v2/tasks/t1/progress"
    token = emulator_api.session.headers["X-Auth-Token"]
    status, _, body = split_response(
        raw_request(
            emulator_api.server.port,
            target,
            {"Host": urlsplit(emulator_api.base_url).netloc, "X-Auth-Token": token},
        )
    )
    assert status == 200
    assert json.loads(body)["task_status"] == 2
    assert emulator_api.progress("t1")["task_status"] == 2
    stats = emulator_api.server.stats()
    assert stats["proxied_requests"] == 1
    assert stats["recent_targets"] == [target, "/v2/tasks/t1/progress"]
    assert stats["requests"] == {"progress 200": 2}


def test_requests_through_a_proxy_url_send_absolute_form(emulator_api):
    """requests talks to an http:// proxy in absolute form; pointing the proxy at the emulator shows it."""
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    proxies = {"http": emulator_api.base_url}
    response = requests.get(
        "http://codecheck-ext.cn-north-4.myhuaweicloud.com/v2/tasks/t1/progress",
        headers={"X-Auth-Token": emulator_api.session.headers["X-Auth-Token"]},
        proxies=proxies,
        timeout=10,
    )
    assert response.json()["task_status"] == 2
    stats = emulator_api.server.stats()
    assert stats["proxied_requests"] == 1
    assert stats["recent_targets"] == [
        "http://codecheck-ext.cn-north-4.myhuaweicloud.com/v2/tasks/t1/progress"
    ]


def test_signature_of_an_absolute_form_request_covers_the_path(emulator):
    emulator.add_task(task_id="t1", initial_status=2)
    url, headers = signed_request(
        emulator.base_url, "GET", "/v2/tasks/t1/progress", query=[("job_id", "a b")]
    )
    status, _, body = split_response(raw_request(emulator.port, url, headers))
    assert status == 200, body
    assert json.loads(body)["error_code"] == "CC.00050002", "served: job 'a b' is no execution of t1"
    tampered = url.replace("/t1/", "/t2/")
    assert split_response(raw_request(emulator.port, tampered, headers))[0] == 401
    assert emulator.stats()["proxied_requests"] == 2


def test_recent_targets_are_raw_and_bounded(emulator_api):
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    token = emulator_api.session.headers["X-Auth-Token"]
    odd = "/v2/tasks/t1/progress?job_id=a%2Fb&x=%7e"
    raw_request(emulator_api.server.port, odd, {"Host": "h", "X-Auth-Token": token})
    assert emulator_api.server.stats()["recent_targets"] == [odd], "exactly as sent, no re-quoting"
    for index in range(60):
        emulator_api.get(f"/v2/tasks/t1/progress?n={index}")
    requests.get(f"{emulator_api.base_url}/_emulator/stats", timeout=10)
    targets = emulator_api.server.stats()["recent_targets"]
    assert len(targets) == 50
    assert targets[0] == "/v2/tasks/t1/progress?n=10"
    assert targets[-1] == "/v2/tasks/t1/progress?n=59", "admin calls are not recorded"


def test_unknown_routes_are_recorded_too(emulator):
    requests.get(f"{emulator.base_url}/v2/nothing/here", timeout=10)
    assert emulator.stats()["recent_targets"] == ["/v2/nothing/here"]
