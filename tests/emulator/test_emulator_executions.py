"""job_id on progress: each run keeps an execution record, and progress?job_id= answers that record."""

from __future__ import annotations

import requests

LOOKUP_FAILED = {"error_code": "CC.00050002", "error_msg": "query task detail error"}
SUCCESS = {"task_status": 2, "progress": {"ratio": "100%", "info": "success"}}
FAILED = {"task_status": 1, "progress": {"ratio": None, "info": None}}
STOPPED = {"task_status": 3, "progress": {"ratio": None, "info": None}}


def running(ratio: str) -> dict:
    return {"task_status": 0, "progress": {"ratio": ratio, "info": "running"}}


def job(emulator_api, task_id: str, job_id: str) -> dict:
    response = emulator_api.get(f"/v2/tasks/{task_id}/progress", params={"job_id": job_id})
    assert response.status_code == 200, response.text
    return response.json()


def test_job_id_answers_that_execution_not_the_latest(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=10, lag_s=5)
    first = emulator_api.run("t1").json()["exec_id"]
    clock.advance(15)
    assert job(emulator_api, "t1", first) == SUCCESS
    second = emulator_api.run("t1").json()["exec_id"]
    assert first != second
    # The post-run lag: the task still shows the first scan's result; the new record is already "checking".
    assert emulator_api.progress("t1") == SUCCESS
    assert job(emulator_api, "t1", second) == running("0%")
    assert job(emulator_api, "t1", first) == SUCCESS
    clock.advance(10)
    assert job(emulator_api, "t1", second) == running("50%")
    assert emulator_api.progress("t1") == running("50%")
    clock.advance(5)
    assert job(emulator_api, "t1", second) == SUCCESS


def test_job_id_of_a_stopped_and_a_failed_execution(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=10, final_status=1)
    first = emulator_api.run("t1").json()["exec_id"]
    clock.advance(2)
    emulator_api.post("/v2/tasks/t1/stop")
    second = emulator_api.run("t1").json()["exec_id"]
    clock.advance(10)
    assert job(emulator_api, "t1", first) == STOPPED
    assert job(emulator_api, "t1", second) == FAILED


def test_unknown_job_id_gets_the_documented_lookup_error(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1")
    exec_id = emulator_api.run("t1").json()["exec_id"]
    emulator_api.server.add_task(task_id="t2")
    assert job(emulator_api, "t2", exec_id) == LOOKUP_FAILED, "an execution of another task"
    assert job(emulator_api, "t1", "0" * 32) == LOOKUP_FAILED


def test_admin_task_json_lists_executions(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=4)
    first = emulator_api.run("t1").json()["exec_id"]
    clock.advance(4)
    second = emulator_api.run("t1").json()["exec_id"]
    clock.advance(1)
    task = requests.get(f"{emulator_api.base_url}/_emulator/tasks/t1", timeout=10).json()
    assert task["last_exec_id"] == second
    records = task["executions"]
    assert [record["exec_id"] for record in records] == [first, second]
    assert (records[0]["task_status"], records[0]["running"], records[0]["stopped"]) == (2, False, False)
    assert (records[1]["task_status"], records[1]["progress"]["ratio"]) == (0, "25%")
    assert records[1]["running"] is True
    assert emulator_api.server.get_task("t1")["executions"] == records


def test_a_refused_run_makes_no_execution(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=10)
    emulator_api.run("t1")
    assert emulator_api.run("t1").json()["error_code"] == "CC.00050015"
    assert len(emulator_api.server.get_task("t1")["executions"]) == 1
    assert emulator_api.server.stats()["runs"] == {"t1": 2}


def test_defects_summary_honours_job_id(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=10)
    first = emulator_api.run("t1").json()["exec_id"]
    clock.advance(10)
    finished = emulator_api.get("/v2/tasks/t1/defects-summary", params={"job_id": first}).json()
    clock.advance(60)
    emulator_api.run("t1")
    latest = emulator_api.get("/v2/tasks/t1/defects-summary").json()
    assert latest["last_check_time"] is None, "the latest scan is still running"
    again = emulator_api.get("/v2/tasks/t1/defects-summary", params={"job_id": first}).json()
    assert again["last_check_time"] == finished["last_check_time"]
    assert again["last_exec_time"] != latest["last_exec_time"]
    missing = emulator_api.get("/v2/tasks/t1/defects-summary", params={"job_id": "f" * 32}).json()
    assert missing == LOOKUP_FAILED
