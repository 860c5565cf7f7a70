"""max_poll_interval on the operator and the sensor: validated, and handed to the wait (docs/polling.md)."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest

from airflow_provider_codecheck.exceptions import CodeCheckConfigurationError
from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator
from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor

try:
    from airflow.providers.common.compat.sdk import TaskDeferred
except ImportError:  # older compat layouts
    from airflow.exceptions import TaskDeferred


def test_max_poll_interval_accepts_numbers_and_timedelta_and_defaults_to_none():
    operator = CodeCheckRunTaskOperator(
        task_id="t", codecheck_task_id="x", poll_interval=5, max_poll_interval=datetime.timedelta(minutes=1)
    )
    assert operator.max_poll_interval == 60.0
    assert CodeCheckRunTaskOperator(task_id="u", codecheck_task_id="x").max_poll_interval is None
    sensor = CodeCheckTaskSensor(task_id="s", codecheck_task_id="x", poke_interval=5, max_poll_interval=40)
    assert sensor.max_poll_interval == 40.0


@pytest.mark.parametrize("value", ["60", True, 0, -5, 1.0])  # 1.0: shorter than the 5 s poll interval
def test_bad_max_poll_interval_names_the_parameter(value):
    with pytest.raises(CodeCheckConfigurationError, match="max_poll_interval"):
        CodeCheckRunTaskOperator(task_id="t", codecheck_task_id="x", poll_interval=5, max_poll_interval=value)
    with pytest.raises(CodeCheckConfigurationError, match="max_poll_interval"):
        CodeCheckTaskSensor(task_id="s", codecheck_task_id="x", poke_interval=5, max_poll_interval=value)


def test_deferred_sensor_hands_max_poll_interval_to_its_trigger():
    sensor = CodeCheckTaskSensor(
        task_id="s", codecheck_task_id="x", deferrable=True, poke_interval=3, max_poll_interval=45
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    _, kwargs = deferred.value.trigger.serialize()
    assert (kwargs["poll_interval"], kwargs["max_poll_interval"]) == (3, 45.0)


def test_deferred_operator_hands_max_poll_interval_to_its_trigger(default_conn_emulator):
    default_conn_emulator.add_task(task_id="t1", initial_status=2)
    operator = CodeCheckRunTaskOperator(
        task_id="op",
        codecheck_task_id="t1",
        run=False,
        deferrable=True,
        poll_interval=2,
        max_poll_interval=30,
    )
    pushed: dict[str, object] = {}
    ti = SimpleNamespace(try_number=1, xcom_push=lambda key, value: pushed.__setitem__(key, value))
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": ti})
    _, kwargs = deferred.value.trigger.serialize()
    assert (kwargs["poll_interval"], kwargs["max_poll_interval"]) == (2.0, 30.0)
    assert "exec_id" in pushed  # the operator went through its normal path before deferring
