"""Sensor and operator behaviour in real Airflow (dag.test on SQLite) against the emulator."""

from __future__ import annotations

import asyncio
import datetime
import json

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout
from airflow_support import build_dag, polls_by, ti_states, xcom

from airflow_provider_codecheck.exceptions import (
    CodeCheckScanFailed,
    CodeCheckWaitAborted,
    CodeCheckWaitError,
)
from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor
from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger

pytestmark = pytest.mark.usefixtures("airflow_db")

SENSOR = "CodeCheckTaskSensor"
OPERATOR = "CodeCheckRunTaskOperator"


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_sensor_in_worker_modes(default_conn_emulator, mode):
    default_conn_emulator.add_task(task_id="scan-a", duration_s=5.0, final_status=2, running=True)
    kwargs = {
        "codecheck_task_id": "scan-a",
        "deferrable": False,
        "mode": mode,
        "poke_interval": 0.3,
        "timeout": 60,
    }
    dag = build_dag(f"sensor_{mode}", {"wait": (SENSOR, kwargs)})
    dag_run = dag.test()
    assert ti_states(dag_run) == {"wait": "success"}
    assert xcom(dag_run, "wait", "status") == "success"
    stats = default_conn_emulator.stats()
    assert polls_by(stats, "aiohttp") == 0  # the worker polled, no trigger was involved
    assert polls_by(stats, "requests") >= 1


@pytest.mark.parametrize("deferrable", [True, False])
def test_failed_scan_fails_sensor_and_soft_fail_skips(default_conn_emulator, deferrable):
    default_conn_emulator.add_task(task_id="scan-f", duration_s=0.5, final_status=1, running=True)
    kwargs = {"codecheck_task_id": "scan-f", "deferrable": deferrable, "poke_interval": 0.3, "timeout": 60}
    dag = build_dag(
        f"sensor_fail_{deferrable}",
        {"hard": (SENSOR, kwargs), "soft": (SENSOR, {**kwargs, "soft_fail": True})},
    )
    dag_run = dag.test()
    assert ti_states(dag_run) == {"hard": "failed", "soft": "skipped"}
    assert xcom(dag_run, "hard", "status") == "failed"  # pushed before failing


def test_deferred_sensor_times_out_inside_the_trigger(default_conn_emulator):
    default_conn_emulator.add_task(task_id="scan-slow", duration_s=120, final_status=2, running=True)
    kwargs = {"codecheck_task_id": "scan-slow", "deferrable": True, "poke_interval": 0.3, "timeout": 1.5}
    dag = build_dag(
        "sensor_timeout", {"wait": (SENSOR, kwargs), "wait_soft": (SENSOR, {**kwargs, "soft_fail": True})}
    )
    dag_run = dag.test()
    assert ti_states(dag_run) == {"wait": "failed", "wait_soft": "skipped"}


class _TaskInstance:
    """Just enough of a TI for execute_complete: it records XCom pushes."""

    def __init__(self) -> None:
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value


def _event(status: str, task_status: int | None, **extra: object) -> dict[str, object]:
    return {
        "status": status,
        "codecheck_task_id": "t",
        "exec_id": None,
        "task_status": task_status,
        "ratio": 100 if status == "success" else None,
        "info": None,
        "message": f"ended {status}",
        **extra,
    }


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (None, CodeCheckWaitError),
        ({"status": "weird"}, CodeCheckWaitError),
        (_event("success", 1), CodeCheckWaitError),  # status and task_status disagree
        (_event("timeout", None), AirflowSensorTimeout),
        # A permanent error is not an AirflowException, so soft_fail cannot turn it into a skip (B7).
        (_event("error", None, error_code="CC.00050010"), CodeCheckWaitAborted),
        (_event("failed", 1), CodeCheckScanFailed),
        (_event("stopped", 3), CodeCheckScanFailed),
    ],
)
def test_sensor_execute_complete_never_succeeds_by_accident(event, error):
    sensor = CodeCheckTaskSensor(task_id="s", codecheck_task_id="t")
    with pytest.raises(error):
        sensor.execute_complete({"ti": _TaskInstance()}, event)


def test_sensor_execute_complete_success_pushes_every_key(default_conn_emulator):
    default_conn_emulator.add_task(task_id="t", final_status=2, running=False)
    ti = _TaskInstance()
    result = CodeCheckTaskSensor(task_id="s", codecheck_task_id="t").execute_complete(
        {"ti": ti}, _event("success", 2)
    )
    assert result["status"] == "success"
    assert result["is_access"] is True  # the task's defects summary (no critical defect)
    assert ti.xcom == {k: result[k] for k in ti.xcom}
    assert set(ti.xcom) == {
        "codecheck_task_id",
        "exec_id",
        "task_status",
        "status",
        "ratio",
        "info",
        "defects",
        "is_access",
        "issue_count",
        "code_quality",
        "risk_coefficient",
        "last_check_time",
    }


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


def test_trigger_serializes_without_secrets_and_resumes_from_kwargs(default_conn_emulator):
    default_conn_emulator.add_task(task_id="scan-s", duration_s=0.6, final_status=3, running=True)
    trigger = CodeCheckTaskTrigger("scan-s", poll_interval=0.2, deadline=None, exec_id="e1")
    classpath, kwargs = trigger.serialize()
    text = json.dumps(kwargs)
    for secret in ("codecheck-password", "emulator-secret-key"):
        assert secret not in text
    module, _, name = classpath.rpartition(".")
    clone = getattr(__import__(module, fromlist=[name]), name)(**kwargs)

    async def first_event():
        async for event in clone.run():
            return event.payload
        return None

    event = asyncio.run(first_event())
    assert event["status"] == "stopped"
    assert event["task_status"] == 3
    assert event["exec_id"] == "e1"


def test_trigger_reports_missing_connection_as_error_event(monkeypatch):
    trigger = CodeCheckTaskTrigger("scan-x", codecheck_conn_id="does_not_exist", poll_interval=0.2)

    async def first_event():
        async for event in trigger.run():
            return event.payload
        return None

    event = asyncio.run(first_event())
    assert event["status"] == "error"
    assert "does_not_exist" in event["message"]


def test_trigger_on_kill_does_not_stop_when_asked_not_to_or_unsure(default_conn_emulator):
    # cancel_on_kill=False never stops; True without a readable task-instance state (no triggerer supervisor
    # here) does not stop either: it may be a triggerer failover (see test_trigger_on_kill.py).
    default_conn_emulator.add_task(task_id="scan-k", duration_s=60, final_status=2, running=True)
    for cancel_on_kill in (False, True):
        trigger = CodeCheckTaskTrigger("scan-k", poll_interval=0.2, cancel_on_kill=cancel_on_kill)
        asyncio.run(trigger.on_kill())
    assert default_conn_emulator.get_task("scan-k")["task_status"] == 0


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
