"""The example DAGs, run by real Airflow (dag.test on SQLite) against the emulator over sockets."""

from __future__ import annotations

import pytest
from airflow_support import load_dag, polls_by, run_dag, ti_states, xcom

pytestmark = pytest.mark.usefixtures("airflow_db")

DEFECTS = {"critical": 0, "major": 4, "minor": 7, "suggestion": 9}


def test_run_and_branch_continues_on_success(default_conn_emulator):
    default_conn_emulator.add_task(
        task_id="demo-scan", duration_s=1.5, final_status=2, running=False, defects=DEFECTS
    )

    dag_run = run_dag(load_dag("example_codecheck_run_and_branch"))

    assert ti_states(dag_run) == {
        "run_scan": "success",
        "on_verdict": "success",
        "publish": "success",
        "report_failure": "skipped",
    }
    assert xcom(dag_run, "run_scan", "status") == "success"
    assert xcom(dag_run, "run_scan", "task_status") == 2
    assert xcom(dag_run, "run_scan", "ratio") == 100
    assert xcom(dag_run, "run_scan", "defects") == DEFECTS
    assert xcom(dag_run, "run_scan", "exec_id") == default_conn_emulator.get_task("demo-scan")["last_exec_id"]
    assert xcom(dag_run, "publish", "return_value") == f"release approved; defects by severity: {DEFECTS}"
    stats = default_conn_emulator.stats()
    assert stats["runs"] == {"demo-scan": 1}
    # Try 1 starts the run without a status read first; every poll came from the trigger.
    assert polls_by(stats, "requests") == 0
    assert polls_by(stats, "aiohttp") >= 2
    assert stats["iam_tokens_issued"] == 1


def test_run_and_branch_holds_release_on_failure(default_conn_emulator):
    default_conn_emulator.add_task(task_id="demo-scan", duration_s=0.5, final_status=1, running=False)

    dag_run = run_dag(load_dag("example_codecheck_run_and_branch"))

    states = ti_states(dag_run)
    assert states["run_scan"] == "success"  # fail_on_failure=False in this example
    assert states["publish"] == "skipped"
    assert states["report_failure"] == "success"
    assert xcom(dag_run, "run_scan", "status") == "failed"
    assert xcom(dag_run, "run_scan", "task_status") == 1
    assert xcom(dag_run, "run_scan", "ratio") is None
    assert xcom(dag_run, "run_scan", "defects") is None


def test_new_run_is_not_mistaken_for_the_previous_verdict(default_conn_emulator):
    # The last scan failed; the service keeps reporting that for 1.5 s after our run starts.
    default_conn_emulator.add_task(
        task_id="demo-scan", duration_s=1.0, final_status=2, running=False, initial_status=1, lag_s=1.5
    )

    dag_run = run_dag(load_dag("example_codecheck_run_and_branch"))

    assert xcom(dag_run, "run_scan", "status") == "success"
    assert ti_states(dag_run)["publish"] == "success"


def test_sensor_waits_for_scan_started_elsewhere(default_conn_emulator):
    default_conn_emulator.add_task(task_id="nightly-scan", duration_s=2.0, final_status=2, running=True)

    dag_run = run_dag(load_dag("example_codecheck_sensor"))

    assert ti_states(dag_run) == {"wait_for_scan": "success", "summarize": "success"}
    assert xcom(dag_run, "summarize", "return_value") == "scan success at 100%"
    assert xcom(dag_run, "wait_for_scan", "task_status") == 2
    stats = default_conn_emulator.stats()
    assert polls_by(stats, "requests") == 0  # deferred at once: only the trigger polled
    assert polls_by(stats, "aiohttp") >= 2
    assert stats["runs"] == {}


def test_quality_gate_passes_under_limits(default_conn_emulator):
    default_conn_emulator.add_task(
        task_id="gate-scan", duration_s=0.5, final_status=2, running=False, defects=DEFECTS
    )

    dag_run = run_dag(load_dag("example_codecheck_quality_gate"))

    assert ti_states(dag_run) == {"scan_with_gate": "success", "deploy": "success"}
    assert xcom(dag_run, "deploy", "return_value") == f"deploying; defects {DEFECTS}"


def test_quality_gate_fails_over_limits(default_conn_emulator):
    over = {"critical": 2, "major": 11, "minor": 0, "suggestion": 0}
    default_conn_emulator.add_task(
        task_id="gate-scan", duration_s=0.5, final_status=2, running=False, defects=over
    )

    dag_run = run_dag(load_dag("example_codecheck_quality_gate"))

    states = ti_states(dag_run)
    assert states["scan_with_gate"] == "failed"
    assert states["deploy"] == "upstream_failed"
    # The verdict is in XCom even though the gate failed the task.
    assert xcom(dag_run, "scan_with_gate", "defects") == over
    assert xcom(dag_run, "scan_with_gate", "status") == "success"


def test_start_then_wait_never_returns_the_previous_verdict(default_conn_emulator):
    # The previous scan failed; for 1.5 s after the run the task's progress still says so.
    default_conn_emulator.add_task(
        task_id="demo-scan", duration_s=1.0, final_status=2, running=False, initial_status=1, lag_s=1.5
    )

    dag_run = run_dag(load_dag("example_codecheck_start_then_wait"))

    assert ti_states(dag_run) == {"start_scan": "success", "wait_for_scan": "success"}
    exec_id = default_conn_emulator.get_task("demo-scan")["last_exec_id"]
    assert xcom(dag_run, "start_scan", "exec_id") == exec_id
    assert xcom(dag_run, "wait_for_scan", "exec_id") == exec_id
    assert xcom(dag_run, "wait_for_scan", "task_status") == 2
    assert default_conn_emulator.stats()["runs"] == {"demo-scan": 1}
