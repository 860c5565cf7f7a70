"""The operator in real Airflow (dag.test on SQLite) against the emulator: worker mode, start-only, retries, on_kill."""

from __future__ import annotations

import datetime

from airflow_support import build_dag, polls_by, ti_states, xcom

OPERATOR = "CodeCheckRunTaskOperator"


def test_operator_in_worker_mode_with_failed_scan(default_conn_emulator):
    default_conn_emulator.add_task(task_id="scan-w", duration_s=0.5, final_status=1, running=False)
    kwargs = {"codecheck_task_id": "scan-w", "deferrable": False, "poll_interval": 0.2}
    dag = build_dag("operator_worker", {"scan": (OPERATOR, kwargs)})
    dag_run = dag.test()
    assert ti_states(dag_run) == {"scan": "failed"}
    assert xcom(dag_run, "scan", "status") == "failed"
    stats = default_conn_emulator.stats()
    assert stats["runs"] == {"scan-w": 1}
    assert polls_by(stats, "aiohttp") == 0


def test_operator_without_waiting_returns_after_start(default_conn_emulator):
    default_conn_emulator.add_task(task_id="scan-nw", duration_s=30, final_status=2, running=False)
    kwargs = {"codecheck_task_id": "scan-nw", "wait_for_completion": False}
    dag = build_dag("operator_no_wait", {"scan": (OPERATOR, kwargs)})
    dag_run = dag.test()
    assert ti_states(dag_run) == {"scan": "success"}
    assert xcom(dag_run, "scan", "status") == "started"
    assert xcom(dag_run, "scan", "exec_id") == default_conn_emulator.get_task("scan-nw")["last_exec_id"]


def test_operator_retry_attaches_to_the_running_scan_instead_of_starting_another(default_conn_emulator):
    # The first try starts the scan and then fails on a permanent error while waiting; the retry must
    # wait for that scan rather than start a second one.
    default_conn_emulator.add_task(
        task_id="scan-r",
        duration_s=3.0,
        final_status=2,
        running=False,
        faults=[{"kind": "forbidden_403", "count": 1, "routes": ["progress"]}],
    )
    kwargs = {
        "codecheck_task_id": "scan-r",
        "deferrable": True,
        "poll_interval": 0.3,
        "retries": 1,
        "retry_delay": datetime.timedelta(0),
    }
    dag = build_dag("operator_retry", {"scan": (OPERATOR, kwargs)})
    dag_run = dag.test()
    assert ti_states(dag_run) == {"scan": "success"}
    assert default_conn_emulator.stats()["runs"] == {"scan-r": 1}


def test_operator_on_kill_stops_only_the_scan_it_started(default_conn_emulator):
    from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator

    default_conn_emulator.add_task(task_id="scan-ok", duration_s=60, final_status=2, running=False)
    # new_run_grace=0: a terminal status is this scan's at once (no previous-verdict window to distrust).
    operator = CodeCheckRunTaskOperator(
        task_id="scan", codecheck_task_id="scan-ok", wait_for_completion=False, new_run_grace=0.0
    )
    operator.on_kill()  # started nothing yet: nothing to stop
    assert default_conn_emulator.stats()["requests"].get("stop 200") is None
    operator._exec_id, operator._stale_until = operator._start(try_number=1)
    operator.on_kill()
    assert default_conn_emulator.get_task("scan-ok")["task_status"] == 3
    operator.on_kill()  # idempotent: the scan is no longer checking, no second stop
    assert default_conn_emulator.stats()["requests"].get("stop 200") == 1
