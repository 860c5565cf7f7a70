"""Scan lifecycle: never run, lag, running ratio, final states, stop, run while running, admin views."""

from __future__ import annotations

import re
import time

import pytest

from airflow_provider_codecheck.emulator.server import EmulatorServer

NEVER = {"task_status": None, "progress": {"ratio": None, "info": None}}
SUCCESS = {"task_status": 2, "progress": {"ratio": "100%", "info": "success"}}
LOOKUP_FAILED = {"error_code": "CC.00050002", "error_msg": "query task detail error"}


def running(ratio: str) -> dict:
    return {"task_status": 0, "progress": {"ratio": ratio, "info": "running"}}


def test_never_run_task_reports_nulls(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1")
    assert emulator_api.progress("t1") == NEVER


def test_run_progress_rises_linearly_then_succeeds(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=10)
    response = emulator_api.run("t1")
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.json()["exec_id"])
    assert emulator_api.progress("t1") == running("0%")
    clock.advance(2.5)
    assert emulator_api.progress("t1") == running("25%")
    clock.advance(7.4)
    assert emulator_api.progress("t1") == running("99%")
    clock.advance(0.1)
    assert emulator_api.progress("t1") == SUCCESS


@pytest.mark.parametrize("final_status", [1, 3])
def test_failed_and_stopped_results_have_null_progress(manual_clock_api, final_status):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=1, final_status=final_status)
    emulator_api.run("t1")
    clock.advance(1)
    assert emulator_api.progress("t1") == {
        "task_status": final_status,
        "progress": {"ratio": None, "info": None},
    }


def test_lag_reports_the_previous_terminal_state(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=1, lag_s=3)
    emulator_api.run("t1")
    assert emulator_api.progress("t1") == NEVER, "first run: before the lag ends the task looks never checked"
    clock.advance(3)
    assert emulator_api.progress("t1") == running("0%")
    clock.advance(1)
    assert emulator_api.progress("t1") == SUCCESS

    second = emulator_api.run("t1").json()["exec_id"]
    clock.advance(2.9)
    assert emulator_api.progress("t1") == SUCCESS, "the old result is reported again during the lag"
    clock.advance(0.6)
    assert emulator_api.progress("t1") == running("50%")
    assert emulator_api.server.get_task("t1")["last_exec_id"] == second


def test_initial_status_is_shown_during_first_lag(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1", lag_s=5, initial_status=1)
    emulator_api.run("t1")
    assert emulator_api.progress("t1")["task_status"] == 1


def test_run_while_running_is_refused_with_http_200(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=5, lag_s=1)
    first = emulator_api.run("t1").json()["exec_id"]
    for _ in range(2):  # during the lag and while running
        response = emulator_api.run("t1")
        assert response.status_code == 200
        assert response.json() == {"error_code": "CC.00050015", "error_msg": "task is running"}
        clock.advance(1)
    clock.advance(5)
    assert emulator_api.run("t1").json()["exec_id"] != first
    assert emulator_api.server.stats()["runs"] == {"t1": 4}
    assert emulator_api.server.get_task("t1")["runs"] == 4


def test_stop_running_scan(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=5)
    emulator_api.run("t1")
    clock.advance(1)
    response = emulator_api.post("/v2/tasks/t1/stop")
    assert (response.status_code, response.json()) == (200, {})
    assert emulator_api.progress("t1") == {"task_status": 3, "progress": {"ratio": None, "info": None}}
    clock.advance(10)
    assert emulator_api.progress("t1")["task_status"] == 3
    assert "exec_id" in emulator_api.run("t1").json(), "a stopped task can run again"


def test_stop_during_lag_stops_at_once(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=5, lag_s=5, initial_status=2)
    emulator_api.run("t1")
    emulator_api.post("/v2/tasks/t1/stop")
    assert emulator_api.progress("t1")["task_status"] == 3


def test_stop_idle_task_is_a_no_op(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    assert emulator_api.post("/v2/tasks/t1/stop").status_code == 200
    assert emulator_api.progress("t1") == SUCCESS


def test_admin_running_flag_starts_a_scan_without_counting_a_run(manual_clock_api):
    emulator_api, clock = manual_clock_api
    task = emulator_api.server.add_task(task_id="t1", duration_s=4, running=True)
    assert task["running"] is True
    assert task["last_exec_id"]
    clock.advance(1)
    assert emulator_api.progress("t1") == running("25%")
    assert emulator_api.server.stats()["runs"] == {}


def test_run_accepts_an_optional_body(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1")
    response = emulator_api.post("/v2/tasks/t1/run", json={"git_branch": "feature"})
    assert "exec_id" in response.json()


def test_progress_with_a_job_id_the_task_never_had(manual_clock_api):
    # job_id is now honoured (the execution record's status); an id the task never had gets the documented
    # lookup error instead of the task's latest progress (formerly the emulator ignored job_id).
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1")
    response = emulator_api.get("/v2/tasks/t1/progress", params={"job_id": "abc"})
    assert (response.status_code, response.json()) == (200, LOOKUP_FAILED)
    assert emulator_api.get("/v2/tasks/t1/progress", params={"job_id": ""}).json() == NEVER, (
        "empty job_id = absent"
    )


def test_defects_summary_and_statistic(manual_clock_api):
    emulator_api, clock = manual_clock_api
    defects = {"critical": 1, "major": 3, "minor": 5, "suggestion": 7}
    emulator_api.server.add_task(task_id="t1", duration_s=1, defects=defects)
    emulator_api.run("t1")
    clock.advance(1)
    summary = emulator_api.get("/v2/tasks/t1/defects-summary").json()
    assert summary["task_id"] == "t1"
    assert summary["issue_count"] == 16
    assert (summary["critical_count"], summary["major_count"]) == ("1", "3")
    assert (summary["minor_count"], summary["suggestion_count"]) == ("5", "7")
    assert isinstance(summary["code_quality"], float)
    assert summary["last_check_time"]
    for field in ("task_name", "git_url", "git_branch", "last_exec_time", "is_access"):
        assert isinstance(summary[field], str)
    statistic = emulator_api.get("/v2/tasks/t1/defects-statistic").json()
    assert statistic == {"severity": defects, "status": {"unresolved": 16, "resolved": 0, "dismissed": 0}}


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", "progress"),
        ("post", "run"),
        ("post", "stop"),
        ("get", "defects-summary"),
        ("get", "defects-statistic"),
    ],
)
def test_unknown_task_answers_the_documented_200_cc_00050002(manual_clock_api, method, suffix):
    # Huawei documents no 404 for these APIs; its error-code table gives CC.00050002 with HTTP 200.
    emulator_api, _ = manual_clock_api
    response = getattr(emulator_api, method)(f"/v2/tasks/nope/{suffix}")
    assert response.status_code == 200
    assert response.json() == LOOKUP_FAILED
    assert response.headers["X-Request-Id"]
    assert emulator_api.server.stats()["runs"] == {}, "no task, so no run reached a task"


def test_unknown_task_http_404_mode_keeps_the_old_answer():
    import requests

    with EmulatorServer(unknown_task="http_404") as server:
        headers = {"X-Auth-Token": server.issue_token()}
        response = requests.get(f"{server.base_url}/v2/tasks/nope/progress", headers=headers, timeout=10)
        assert response.status_code == 404
        assert response.json() == {"error_code": "CC.00000404", "error_msg": "task nope not found"}


def test_unknown_task_mode_is_validated():
    with pytest.raises(ValueError, match="unknown_task"):
        EmulatorServer(unknown_task="teapot")


def test_auto_create_makes_a_finished_task():
    with EmulatorServer(auto_create=True) as server:
        import requests

        headers = {"X-Auth-Token": server.issue_token()}
        response = requests.get(f"{server.base_url}/v2/tasks/anything/progress", headers=headers, timeout=10)
        assert response.json() == SUCCESS
        response = requests.post(f"{server.base_url}/v2/tasks/anything/run", headers=headers, timeout=10)
        assert "exec_id" in response.json()


def test_real_clock_scan_completes(emulator_api):
    """The default monotonic clock: poll (bounded) until the short scan succeeds."""
    emulator_api.server.add_task(task_id="t1", duration_s=0.3)
    emulator_api.run("t1")
    seen = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = emulator_api.progress("t1")["task_status"]
        seen.add(status)
        if status == 2:
            break
        time.sleep(0.05)
    assert seen >= {0, 2}
