"""Admin HTTP API, stats counters (requests, connections) and response headers."""

from __future__ import annotations

import socket

import requests
from emulator_helpers import wait_until


def admin(emulator, method, path, **kwargs):
    return requests.request(method, f"{emulator.base_url}/_emulator/{path}", timeout=10, **kwargs)


def test_admin_api_round_trip(emulator):
    spec = {"task_id": "t1", "duration_s": 1.5, "final_status": 1, "defects": {"major": 2}}
    created = admin(emulator, "POST", "tasks", json=spec)
    assert created.status_code == 201
    assert created.json()["task_status"] is None
    token = admin(emulator, "POST", "tokens", json={"lifetime_s": 3600})
    assert token.status_code == 201
    headers = {"X-Auth-Token": token.json()["token"]}
    exec_id = requests.post(f"{emulator.base_url}/v2/tasks/t1/run", headers=headers, timeout=10).json()[
        "exec_id"
    ]
    task = admin(emulator, "GET", "tasks/t1").json()
    assert (task["last_exec_id"], task["runs"], task["task_status"]) == (exec_id, 1, 0)
    assert task["defects"] == {"critical": 0, "major": 2, "minor": 0, "suggestion": 0}
    assert admin(emulator, "POST", "expire-tokens").status_code == 200
    assert (
        requests.get(f"{emulator.base_url}/v2/tasks/t1/progress", headers=headers, timeout=10).status_code
        == 401
    )
    assert admin(
        emulator, "POST", "faults", json={"seed": 1, "faults": [{"kind": "busy_400", "count": 1}]}
    ).ok
    assert admin(emulator, "POST", "reset").ok
    assert admin(emulator, "GET", "tasks/t1").status_code == 404
    stats = admin(emulator, "GET", "stats").json()
    assert stats["requests_total"] == 0
    assert stats["runs"] == {}


def test_admin_rejects_bad_task_specs(emulator):
    for spec in (
        {"final_status": 0},
        {"duration_s": -1},
        {"defects": {"major": "lots"}},
        {"initial_status": 9},
    ):
        assert admin(emulator, "POST", "tasks", json={"task_id": "t", **spec}).status_code == 400, spec
    assert admin(emulator, "POST", "tasks", data=b"[1, 2]").status_code == 400


def test_admin_requests_are_not_counted_as_api_requests(emulator):
    admin(emulator, "GET", "stats")
    assert emulator.stats()["requests_total"] == 0


def test_request_counts_by_route_and_status(emulator_api):
    emulator_api.server.add_task(task_id="t1")
    emulator_api.progress("t1")
    emulator_api.progress("t1")
    emulator_api.run("t1")
    emulator_api.get("/v2/tasks/missing/defects-statistic")
    stats = emulator_api.server.stats()
    assert stats["requests"] == {"progress 200": 2, "run 200": 1, "defects_statistic 200": 1}
    assert stats["requests_total"] == 4
    assert stats["runs"] == {"t1": 1}


def test_request_ids_are_unique(emulator_api):
    emulator_api.server.add_task(task_id="t1")
    ids = {emulator_api.get("/v2/tasks/t1/progress").headers["X-Request-Id"] for _ in range(10)}
    ids.add(requests.get(f"{emulator_api.base_url}/no/such/route", timeout=10).headers["X-Request-Id"])
    assert len(ids) == 11


def test_connections_count_new_tcp_connections_not_keep_alive_reuse(emulator_api):
    emulator_api.server.add_task(task_id="t1")
    for _ in range(5):
        emulator_api.progress("t1")  # one Session: a single keep-alive connection
    assert emulator_api.server.stats()["connections"] == 1
    for _ in range(3):
        with requests.Session() as fresh:
            fresh.get(f"{emulator_api.base_url}/v2/tasks/t1/progress", timeout=10)
    assert emulator_api.server.stats()["connections"] == 4
    # A bare TCP connect that sends nothing still counts: it is an accepted connection.
    with socket.create_connection(("127.0.0.1", emulator_api.server.port)):
        pass
    # The server accepts asynchronously, after connect() has returned here.
    assert wait_until(lambda: emulator_api.server.stats()["connections"] == 5)
    assert emulator_api.server.stats()["tls_handshakes"] == 0
