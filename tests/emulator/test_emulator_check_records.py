"""Scan history (checkrecord) and scans the emulator starts itself (commit admin call, schedule)."""

from __future__ import annotations

from typing import Any

import pytest
from emulator_helpers import Api

from airflow_provider_codecheck.emulator.state import ManualClock

PROJECT = "0123456789abcdef0123456789abcdef"


def records(emulator_api: Api, task_id: str, **query: Any) -> dict[str, Any]:
    response = emulator_api.get(f"/v2/{PROJECT}/tasks/{task_id}/checkrecord", params=query)
    assert response.status_code == 200, response.text
    return response.json()


def commit(emulator_api: Api, task_id: str, **spec: Any):
    return emulator_api.post(f"/_emulator/tasks/{task_id}/commit", json=spec)


def test_history_lists_finished_scans_newest_first(manual_clock_api: tuple[Api, ManualClock]) -> None:
    emulator_api, clock = manual_clock_api
    emulator_api.post(
        "/_emulator/tasks", json={"task_id": "h1", "duration_s": 10, "defects": {"critical": 1}}
    )
    assert records(emulator_api, "h1") == {"data": [], "total": 0}
    first = commit(emulator_api, "h1", final_status=2)
    assert first.status_code == 201
    first_id = first.json()["exec_id"]
    assert records(emulator_api, "h1", limit=1000)["total"] == 0  # running scans are not history
    clock.advance(10)
    second_id = commit(emulator_api, "h1", final_status=1, defects={"major": 4, "suggestion": 2}).json()[
        "exec_id"
    ]
    clock.advance(3)
    assert (
        commit(emulator_api, "h1").status_code == 409
    )  # one scan at a time, as the service refuses a second run
    clock.advance(7)
    body = records(emulator_api, "h1", limit=1000)
    assert body["total"] == 2
    assert [r["job_id"] for r in body["data"]] == [second_id, first_id]
    newest = body["data"][0]
    assert newest["issue_counts"] == {"critical": 0, "serious": 4, "normal": 0, "prompt": 2}
    assert body["data"][1]["issue_counts"]["critical"] == 1
    for record in body["data"]:
        assert record["check_time"].endswith("Z")
        assert record["check_end_time"] >= record["check_time"]
    # the execution's own status stays readable by job_id
    assert emulator_api.get(f"/v2/tasks/h1/progress?job_id={second_id}").json()["task_status"] == 1
    summary = emulator_api.get(f"/v2/tasks/h1/defects-summary?job_id={second_id}").json()
    assert summary["is_access"] == "1"
    assert summary["major_count"] == "4"


def test_commit_is_not_a_run_call(manual_clock_api: tuple[Api, ManualClock]) -> None:
    emulator_api, clock = manual_clock_api
    emulator_api.post("/_emulator/tasks", json={"task_id": "h2", "duration_s": 1})
    commit(emulator_api, "h2")
    clock.advance(1)
    task = emulator_api.get("/_emulator/tasks/h2").json()
    assert task["runs"] == 0
    assert task["executions"][0]["origin"] == "commit"
    assert emulator_api.progress("h2")["task_status"] == 2


def test_commit_errors(manual_clock_api: tuple[Api, ManualClock]) -> None:
    emulator_api, _ = manual_clock_api
    assert commit(emulator_api, "nope").status_code == 404
    emulator_api.post("/_emulator/tasks", json={"task_id": "h3"})
    assert commit(emulator_api, "h3", final_status=0).status_code == 409
    assert commit(emulator_api, "h3", colour="red").status_code == 409


def test_filters_and_paging(manual_clock_api: tuple[Api, ManualClock]) -> None:
    emulator_api, clock = manual_clock_api
    emulator_api.post("/_emulator/tasks", json={"task_id": "h4", "duration_s": 5})
    ids = []
    for _ in range(3):
        ids.append(commit(emulator_api, "h4").json()["exec_id"])
        clock.advance(100)
    everything = records(emulator_api, "h4", limit=1000)["data"]
    assert [r["job_id"] for r in everything] == ids[::-1]
    middle = everything[1]
    since = records(emulator_api, "h4", limit=1000, start_time=middle["check_time"])["data"]
    assert [r["job_id"] for r in since] == ids[:0:-1]
    until = records(emulator_api, "h4", limit=1000, end_time=middle["check_end_time"])["data"]
    assert [r["job_id"] for r in until] == ids[1::-1]
    assert records(emulator_api, "h4")["total"] == 3  # default limit 10
    page = records(emulator_api, "h4", limit=2, offset=1)
    assert page["total"] == 3
    assert [r["job_id"] for r in page["data"]] == [ids[0]]


@pytest.mark.parametrize(
    "query", [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"start_time": "yesterday"}]
)
def test_bad_parameters_get_the_documented_code(
    manual_clock_api: tuple[Api, ManualClock], query: dict
) -> None:
    emulator_api, _ = manual_clock_api
    emulator_api.post("/_emulator/tasks", json={"task_id": "h5"})
    response = emulator_api.get(f"/v2/{PROJECT}/tasks/h5/checkrecord", params=query)
    assert response.status_code == 200
    assert response.json()["error_code"] == "CC.00050000"


def test_unknown_task_and_auth(manual_clock_api: tuple[Api, ManualClock]) -> None:
    emulator_api, _ = manual_clock_api
    assert emulator_api.get(f"/v2/{PROJECT}/tasks/ghost/checkrecord").json()["error_code"] == "CC.00050002"
    anonymous = emulator_api.session.headers.pop("X-Auth-Token")
    try:
        assert emulator_api.get(f"/v2/{PROJECT}/tasks/ghost/checkrecord").status_code == 401
    finally:
        emulator_api.session.headers["X-Auth-Token"] = anonymous


def test_schedule_starts_scans_on_the_emulator_clock(manual_clock_api: tuple[Api, ManualClock]) -> None:
    emulator_api, clock = manual_clock_api
    emulator_api.post("/_emulator/tasks", json={"task_id": "h6", "duration_s": 30, "schedule_s": 100})
    clock.advance(99)
    assert records(emulator_api, "h6")["total"] == 0
    assert emulator_api.progress("h6")["task_status"] is None
    clock.advance(1)
    assert emulator_api.progress("h6")["task_status"] == 0
    clock.advance(320)  # scans at 100, 200, 300, 400; the one at 400 runs until 430
    body = records(emulator_api, "h6", limit=1000)
    assert body["total"] == 3
    executions = emulator_api.get("/_emulator/tasks/h6").json()["executions"]
    assert [e["origin"] for e in executions] == ["schedule"] * 4
    assert [e["started_at"] - executions[0]["started_at"] for e in executions] == [0, 100, 200, 300]


def test_schedule_skips_while_running(manual_clock_api: tuple[Api, ManualClock]) -> None:
    emulator_api, clock = manual_clock_api
    emulator_api.post("/_emulator/tasks", json={"task_id": "h7", "duration_s": 150, "schedule_s": 100})
    clock.advance(320)  # 100 starts (runs to 250), 200 skipped, 300 starts
    starts = [e["started_at"] for e in emulator_api.get("/_emulator/tasks/h7").json()["executions"]]
    assert [s - starts[0] for s in starts] == [0, 200]
    assert emulator_api.post("/_emulator/tasks", json={"task_id": "h8", "schedule_s": 0}).status_code == 400
