"""Faults that let the operation happen and then lose or mangle its answer: 504, reset, trickle, huge body."""

from __future__ import annotations

import json
import re
import socket

import pytest
import requests
from emulator_helpers import split_response


@pytest.fixture
def task(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=10)
    return "t1"


# --- gateway_timeout_504 ------------------------------------------------------------------------------------------


def test_504_after_run_started_the_scan(manual_clock_api, task):
    emulator_api, clock = manual_clock_api
    emulator_api.server.set_faults([{"kind": "gateway_timeout_504", "count": 1, "routes": ["run"]}])
    response = emulator_api.run(task)
    assert response.status_code == 504
    assert response.json() == {
        "error_code": "APIG.0203",
        "error_msg": "Backend timeout.",
        "request_id": response.headers["X-Request-Id"],
    }
    stats = emulator_api.server.stats()
    assert stats["runs"] == {"t1": 1}, "exactly one run reached the task"
    assert stats["requests"] == {"run 504": 1}
    admin = emulator_api.server.get_task(task)
    assert admin["running"] is True
    assert re.fullmatch(r"[0-9a-f]{32}", admin["last_exec_id"])
    clock.advance(5)
    assert emulator_api.progress(task) == {"task_status": 0, "progress": {"ratio": "50%", "info": "running"}}
    again = emulator_api.run(task)
    assert again.json()["error_code"] == "CC.00050015", "the scan the 504 hid is running"


def test_504_code_option_and_other_routes(manual_clock_api, task):
    emulator_api, _ = manual_clock_api
    emulator_api.server.set_faults([{"kind": "gateway_timeout_504", "count": 2, "code": "APIG.0201"}])
    for path in ("/v2/tasks/t1/progress", "/v2/tasks/t1/defects-summary"):
        response = emulator_api.get(path)
        assert (response.status_code, response.json()["error_code"]) == (504, "APIG.0201")
    assert emulator_api.server.stats()["faults_injected"] == {"gateway_timeout_504": 2}


def test_504_on_stop_did_stop(manual_clock_api, task):
    emulator_api, _ = manual_clock_api
    emulator_api.run(task)
    emulator_api.server.set_faults([{"kind": "gateway_timeout_504", "count": 1, "routes": ["stop"]}])
    assert emulator_api.post(f"/v2/tasks/{task}/stop").status_code == 504
    assert emulator_api.progress(task)["task_status"] == 3


# --- reset_after ----------------------------------------------------------------------------------------------


def test_reset_after_run_started_the_scan(manual_clock_api, task):
    emulator_api, _ = manual_clock_api
    emulator_api.server.set_faults([{"kind": "reset_after", "count": 1, "routes": ["run"]}])
    with pytest.raises(requests.ConnectionError):
        emulator_api.run(task)
    stats = emulator_api.server.stats()
    assert stats["runs"] == {"t1": 1}
    assert stats["requests"] == {"run reset": 1}
    assert emulator_api.server.get_task(task)["running"] is True
    emulator_api.session.close()
    assert emulator_api.progress(task)["task_status"] == 0


def test_reset_after_with_aiohttp(manual_clock_api, task):
    import asyncio

    import aiohttp

    emulator_api, _ = manual_clock_api
    emulator_api.server.set_faults([{"kind": "reset_after", "count": 1}])

    async def call() -> None:
        async with aiohttp.ClientSession() as session:
            headers = {"X-Auth-Token": emulator_api.session.headers["X-Auth-Token"]}
            with pytest.raises(aiohttp.ClientError):
                await session.post(f"{emulator_api.base_url}/v2/tasks/{task}/run", headers=headers)

    asyncio.run(call())
    assert emulator_api.server.stats()["runs"] == {"t1": 1}


# --- trickle -------------------------------------------------------------------------------------------------


def read_in_pieces(port: int, token: str, path: str) -> tuple[bytes, list[bytes]]:
    """Headers first, then every recv() of the body separately."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, first = data.partition(b"\r\n\r\n")
        pieces = [first] if first else []
        while chunk := sock.recv(65536):
            pieces.append(chunk)
    return head + b"\r\n\r\n", pieces


def test_trickle_sends_the_body_in_small_pieces(manual_clock_api, task):
    emulator_api, _ = manual_clock_api
    emulator_api.server.set_faults([{"kind": "trickle", "count": 1, "chunk": 8, "delay_s": 0.02}])
    head, pieces = read_in_pieces(
        emulator_api.server.port, emulator_api.session.headers["X-Auth-Token"], "/v2/tasks/t1/progress"
    )
    status, headers, _ = split_response(head)
    body = b"".join(pieces)
    assert status == 200
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {"task_status": None, "progress": {"ratio": None, "info": None}}
    assert len(pieces) >= 2, "the body did not come in one piece"
    assert emulator_api.server.stats()["requests"] == {"progress 200": 1}


def test_trickle_defaults_to_one_byte_per_second(manual_clock_api, task):
    emulator_api, _ = manual_clock_api
    emulator_api.server.set_faults([{"kind": "trickle", "count": 1}])
    # The headers come at once, then a byte a second: a 0.5 s read timeout is reached between two body bytes
    # (requests reports a read timeout inside the body as a ConnectionError).
    with pytest.raises((requests.Timeout, requests.ConnectionError), match="timed out"):
        emulator_api.get("/v2/tasks/t1/progress", timeout=0.5)
    emulator_api.session.close()


def test_trickle_run_started_the_scan(manual_clock_api, task):
    emulator_api, _ = manual_clock_api
    emulator_api.server.set_faults(
        [{"kind": "trickle", "count": 1, "chunk": 64, "delay_s": 0.01, "routes": ["run"]}]
    )
    assert "exec_id" in emulator_api.run(task).json()
    assert emulator_api.server.stats()["runs"] == {"t1": 1}


@pytest.mark.parametrize("options", [{"chunk": 0}, {"chunk": 1.5}, {"delay_s": -1}], ids=str)
def test_trickle_options_are_validated(emulator, options):
    spec = {"kind": "trickle", "count": 1, **options}
    response = requests.post(f"{emulator.base_url}/_emulator/faults", json={"faults": [spec]}, timeout=10)
    assert response.status_code == 400


# --- huge_body -------------------------------------------------------------------------------------------------


def test_huge_body_default_is_12_mib_of_valid_json(manual_clock_api, task):
    emulator_api, _ = manual_clock_api
    emulator_api.server.set_faults([{"kind": "huge_body", "count": 1}])
    response = emulator_api.get("/v2/tasks/t1/progress")
    assert response.status_code == 200
    assert len(response.content) == 12 * 1024 * 1024
    body = response.json()
    assert body["task_status"] is None
    assert set(body) == {"task_status", "progress", "padding"}


def test_huge_body_size_option_on_run(manual_clock_api, task):
    emulator_api, _ = manual_clock_api
    emulator_api.server.set_faults([{"kind": "huge_body", "count": 1, "size_mb": 0.5, "routes": ["run"]}])
    response = emulator_api.run(task)
    assert len(response.content) == 512 * 1024
    assert re.fullmatch(r"[0-9a-f]{32}", response.json()["exec_id"])
    assert emulator_api.server.stats()["runs"] == {"t1": 1}


@pytest.mark.parametrize("size", [0, -1, 1000, "big"], ids=str)
def test_huge_body_size_is_validated(emulator, size):
    spec = {"kind": "huge_body", "count": 1, "size_mb": size}
    response = requests.post(f"{emulator.base_url}/_emulator/faults", json={"faults": [spec]}, timeout=10)
    assert response.status_code == 400


# --- on the IAM route -------------------------------------------------------------------------------------------


def test_504_on_iam_after_the_token_was_issued(emulator):
    from airflow_provider_codecheck.emulator import defaults

    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": defaults.IAM_USER,
                        "password": defaults.IAM_PASSWORD,
                        "domain": {"name": defaults.IAM_DOMAIN},
                    }
                },
            },
            "scope": {"project": {"name": "cn-north-4"}},
        }
    }
    emulator.set_faults([{"kind": "gateway_timeout_504", "count": 1, "routes": ["iam"]}])
    response = requests.post(f"{emulator.base_url}/v3/auth/tokens", json=body, timeout=10)
    assert (response.status_code, response.json()["error_code"]) == (504, "APIG.0203")
    assert "X-Subject-Token" not in response.headers
    stats = emulator.stats()
    assert stats["iam_tokens_issued"] == 1, "IAM issued a token the client never saw"
    assert stats["requests"] == {"iam 504": 1}
    emulator.set_faults([{"kind": "extra_fields", "count": 1, "routes": ["iam"]}])
    response = requests.post(f"{emulator.base_url}/v3/auth/tokens", json=body, timeout=10)
    assert response.status_code == 201
    assert response.headers["X-Subject-Token"].startswith("MII")
    assert response.json()["extension"] == {"code": "CC.1", "message": "not an error"}
    assert "expires_at" in response.json()["token"]
