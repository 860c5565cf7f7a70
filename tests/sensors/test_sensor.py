"""The sensor in real Airflow (dag.test on SQLite) against the emulator: worker modes, deferral, soft_fail, XCom."""

from __future__ import annotations

import time

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout
from airflow_support import RecordingTaskInstance, build_dag, polls_by, ti_states, xcom

from airflow_provider_codecheck.core.retry import RetryPolicy
from airflow_provider_codecheck.exceptions import (
    CodeCheckScanFailed,
    CodeCheckWaitAborted,
    CodeCheckWaitError,
)
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor

pytestmark = pytest.mark.usefixtures("airflow_db")

SENSOR = "CodeCheckTaskSensor"


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
        sensor.execute_complete({"ti": RecordingTaskInstance()}, event)


def test_sensor_execute_complete_success_pushes_every_key(default_conn_emulator):
    default_conn_emulator.add_task(task_id="t", final_status=2, running=False)
    ti = RecordingTaskInstance()
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


def test_throttled_poke_is_not_repeated_before_retry_after(default_conn_emulator):
    # Sensor poke/reschedule modes: the next poke comes no sooner than the server's Retry-After.
    default_conn_emulator.add_task(
        task_id="throttled",
        duration_s=30,
        final_status=2,
        running=True,
        faults=[{"kind": "throttle_429", "count": 2, "retry_after": 40, "routes": ["progress"]}],
    )
    sensor = CodeCheckTaskSensor(task_id="s", codecheck_task_id="throttled", poke_interval=1, mode="poke")
    # One attempt per poke, so the 429 reaches the sensor at once (a Retry-After beyond the client's retry
    # budget is given up on at once anyway).
    sensor.hook = CodeCheckHook(retry_policy=RetryPolicy(max_attempts=1))
    assert sensor.poke({}) is False
    assert sensor._get_next_poke_interval(time.monotonic(), lambda: 0.0, 1) == 40.0
    assert sensor._get_next_poke_interval(time.monotonic(), lambda: 0.0, 2) == 1.0  # back to poke_interval
