"""B3/B5: the operator never calls run twice for one scan, and no one returns the previous scan's verdict."""

from __future__ import annotations

import datetime

import pytest
from airflow_support import build_dag, ti_states, xcom

pytestmark = pytest.mark.usefixtures("airflow_db")

OPERATOR = "CodeCheckRunTaskOperator"
SENSOR = "CodeCheckTaskSensor"


@pytest.mark.parametrize("kind", ["gateway_timeout_504", "reset_after"])
@pytest.mark.parametrize("deferrable", [False, True])
def test_run_with_unknown_outcome_attaches_to_the_scan_it_started(default_conn_emulator, deferrable, kind):
    # The gateway answers 504 (or the connection is reset) after the backend started the scan; during the lag
    # progress still shows the previous verdict (failed), so the operator must wait to see "checking" and then
    # attach: one run call.
    default_conn_emulator.add_task(
        task_id="gw-504",
        duration_s=0.6,
        lag_s=1.0,
        final_status=2,
        initial_status=1,
        running=False,
        faults=[{"kind": kind, "count": 1, "routes": ["run"]}],
    )
    kwargs = {"codecheck_task_id": "gw-504", "deferrable": deferrable, "poll_interval": 0.2}
    dag_run = build_dag(f"attach_{kind}_{deferrable}", {"scan": (OPERATOR, kwargs)}).test()
    assert ti_states(dag_run) == {"scan": "success"}
    assert xcom(dag_run, "scan", "status") == "success"
    assert default_conn_emulator.stats()["runs"] == {"gw-504": 1}


def test_run_with_unknown_effect_and_no_scan_fails_clearly_without_a_second_run(default_conn_emulator):
    # A 504 on run that did start nothing cannot be produced by the emulator (its 504 performs the run), but a
    # run whose scan already ended before we look is the same situation for the operator: no "checking" seen.
    default_conn_emulator.add_task(
        task_id="gw-gone",
        duration_s=0.0,
        final_status=2,
        initial_status=2,
        running=False,
        faults=[{"kind": "gateway_timeout_504", "count": 1, "routes": ["run"]}],
    )
    kwargs = {
        "codecheck_task_id": "gw-gone",
        "deferrable": False,
        "poll_interval": 0.2,
        "new_run_grace": 0.5,
        "retries": 2,
        "retry_delay": datetime.timedelta(0),
    }
    dag_run = build_dag("attach_504_none", {"scan": (OPERATOR, kwargs)}).test()
    assert ti_states(dag_run) == {"scan": "failed"}
    assert default_conn_emulator.stats()["runs"] == {
        "gw-gone": 1
    }  # failed without Airflow retry: no second run


def test_run_answered_task_running_attaches(default_conn_emulator):
    default_conn_emulator.add_task(task_id="busy", duration_s=1.0, final_status=2, running=True)
    kwargs = {"codecheck_task_id": "busy", "deferrable": True, "poll_interval": 0.2}
    dag_run = build_dag("attach_running", {"scan": (OPERATOR, kwargs)}).test()
    assert ti_states(dag_run) == {"scan": "success"}
    assert default_conn_emulator.stats()["runs"] == {"busy": 1}  # the refused run, never resent


@pytest.mark.parametrize("deferrable", [True, False])
def test_sensor_with_exec_id_never_returns_the_previous_verdict(default_conn_emulator, deferrable):
    # The previous scan failed; the new one (started by the operator, not waited for) succeeds after a lag
    # during which the task's progress still reports the old failure.
    default_conn_emulator.add_task(
        task_id="lagged", duration_s=0.6, lag_s=1.5, final_status=2, initial_status=1, running=False
    )
    tasks = {
        "run": (OPERATOR, {"codecheck_task_id": "lagged", "wait_for_completion": False}),
        "wait": (
            SENSOR,
            {
                "codecheck_task_id": "lagged",
                "exec_id": "{{ ti.xcom_pull(task_ids='run', key='exec_id') }}",
                "deferrable": deferrable,
                "poke_interval": 0.2,
                "timeout": 60,
            },
        ),
    }
    dag_run = build_dag(f"sensor_exec_id_{deferrable}", tasks, [("run", "wait")]).test()
    assert ti_states(dag_run) == {"run": "success", "wait": "success"}
    exec_id = default_conn_emulator.get_task("lagged")["last_exec_id"]
    assert xcom(dag_run, "wait", "exec_id") == exec_id
    assert xcom(dag_run, "wait", "task_status") == 2


def test_operator_retry_inside_the_lag_attaches_instead_of_running_again(default_conn_emulator):
    # Try 1 starts the scan, then fails on a permanent error while waiting; try 2 comes inside the service's
    # post-run lag, where progress still shows the previous verdict and run answers CC.00050015.
    default_conn_emulator.add_task(
        task_id="lag-retry",
        duration_s=0.6,
        lag_s=4.0,
        final_status=2,
        initial_status=1,
        running=False,
        faults=[{"kind": "forbidden_403", "count": 1, "routes": ["progress"]}],
    )
    kwargs = {
        "codecheck_task_id": "lag-retry",
        "deferrable": True,
        "poll_interval": 0.2,
        "retries": 1,
        "retry_delay": datetime.timedelta(0),
    }
    dag_run = build_dag("operator_retry_in_lag", {"scan": (OPERATOR, kwargs)}).test()
    assert ti_states(dag_run) == {"scan": "success"}
    assert xcom(dag_run, "scan", "task_status") == 2
    assert default_conn_emulator.stats()["runs"] == {
        "lag-retry": 2
    }  # try 1's run, try 2's refused run: nothing resent


def test_a_rendered_none_job_id_means_no_job_id(default_conn_emulator):
    # "{{ ti.xcom_pull(...) }}" of an XCom that held None renders as the text "None".
    default_conn_emulator.add_task(task_id="none-job", duration_s=0.3, final_status=2, running=False)
    kwargs = {
        "codecheck_task_id": "none-job",
        "job_id": "{{ None }}",
        "poll_interval": 0.1,
        "deferrable": True,
    }
    dag_run = build_dag("operator_job_id_none", {"scan": (OPERATOR, kwargs)}).test()
    assert ti_states(dag_run) == {"scan": "success"}
    assert default_conn_emulator.stats()["runs"] == {"none-job": 1}


@pytest.mark.parametrize("fallback", [True, False])
def test_unknown_job_id_falls_back_to_the_latest_scan_only_for_the_operators_own_run(
    default_conn_emulator, fallback
):
    # A service that does not know a job_id answers CC.00050002. For the operator's own exec_id (which exists)
    # that means "job_id unsupported": follow the latest scan. For a user-given id it is an error.
    import asyncio

    from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
    from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger

    default_conn_emulator.add_task(task_id="no-job", duration_s=0.4, final_status=2, running=True)
    trigger = CodeCheckTaskTrigger(
        "no-job", poll_interval=0.1, exec_id="ghost", job_id="ghost", job_id_fallback=fallback
    )

    async def events():
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(events())
    worker = CodeCheckHook().wait_for_scan("no-job", 0.1, 30, job_id="ghost", job_id_fallback=fallback)
    expected = "success" if fallback else "error"
    assert (event["status"], worker["status"]) == (expected, expected)
    assert CodeCheckTaskTrigger(**trigger.serialize()[1]).job_id_fallback is fallback
