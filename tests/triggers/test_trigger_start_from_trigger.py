"""start_from_trigger on Airflow >= 3.3.2: the trigger, built and rendered exactly as the triggerer builds it,
waits against the emulator (real sockets) and ends the task itself with the same XComs and verdicts as a worker.

``dag.test()`` does not honour start_from_trigger (3.3.2 ``sdk/definitions/dag.py`` runs every task's
``execute()`` in process), so these tests take the triggerer's own steps instead: serialize the DAG, decode the
scheduler's ``StartTriggerArgs`` (``DagSerialization`` → ``Trigger`` row kwargs → ``smart_decode_trigger_kwargs``),
instantiate the trigger, ``TriggerRunner.create_runtime_ti`` + ``get_template_context`` + the ``task_instance``
setter + ``render_template_fields``, and ``timeout_after`` = now + ``StartTriggerArgs.timeout`` as
``TaskInstance.defer_task`` computes it. The full stack (scheduler + triggerer, no worker run) is the scale run's.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from typing import Any

import pytest

from airflow_provider_codecheck.triggering import timeout_margin, unsupported_reason

if unsupported_reason() is not None:
    pytest.skip(f"start_from_trigger needs Airflow >= 3.3.2: {unsupported_reason()}", allow_module_level=True)

from airflow.providers.common.compat.sdk import AirflowSensorTimeout
from airflow.sdk import DAG
from airflow.triggers.base import (
    TaskFailedEvent,
    TaskSkippedEvent,
    TaskSuccessEvent,
    TriggerEvent,
)

from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.exceptions import (
    CodeCheckConfigurationError,
    CodeCheckQualityGateFailed,
    CodeCheckScanFailed,
    CodeCheckServiceGateFailed,
)
from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator
from airflow_provider_codecheck.results import XCOM_KEYS, Verdict
from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor
from airflow_provider_codecheck.testing import connection_json
from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger, task_end_event

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture
def emulator(codecheck_emulator_clean: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A reset emulator, with ``codecheck_default`` pointing at it (as tests/airflow/conftest.py's)."""
    # region and project_id: the operator's console_url XCom is then a link, not None.
    connection = connection_json(
        codecheck_emulator_clean.base_url, region="cn-north-4", project_id="0123456789abcdef0123456789abcdef"
    )
    monkeypatch.setenv("AIRFLOW_CONN_CODECHECK_DEFAULT", connection)
    iam.TOKEN_CACHE.clear()
    return codecheck_emulator_clean


def _dag(params: dict[str, Any] | None = None) -> DAG:
    return DAG("sft", schedule=None, start_date=START, params=params or {})


def _as_triggerer_builds_it(dag: DAG, task_id: str) -> CodeCheckTaskTrigger:
    """The trigger of ``task_id`` as the 3.3.2 scheduler creates it and the triggerer starts it."""
    from airflow.executors.workloads.task import TaskInstanceDTO
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.models.trigger import Trigger
    from airflow.serialization.decoders import smart_decode_trigger_kwargs
    from airflow.serialization.serialized_objects import DagSerialization

    data = DagSerialization.to_dict(dag)
    task = DagSerialization.from_dict(data).get_task(task_id)  # the scheduler's deserialized operator
    assert task.start_from_trigger is True
    args = task.start_trigger_args
    row = Trigger(classpath=args.trigger_cls, kwargs=args.trigger_kwargs or {})  # TaskInstance.defer_task
    kwargs = {
        k: smart_decode_trigger_kwargs(v) for k, v in Trigger._decrypt_kwargs(row.encrypted_kwargs).items()
    }
    module, _, name = args.trigger_cls.rpartition(".")
    trigger = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    now = datetime.datetime.now(datetime.UTC)
    ti = TaskInstanceDTO(
        id=uuid.uuid4(),
        task_id=task_id,
        dag_id=dag.dag_id,
        run_id="manual__sft",
        try_number=1,
        map_index=-1,
        dag_version_id=uuid.uuid4(),
        pool_slots=1,
        priority_weight=1,
    )
    run = {
        "dag_id": dag.dag_id,
        "run_id": "manual__sft",
        "logical_date": now,
        "data_interval_start": now,
        "data_interval_end": now,
        "run_after": now,
        "start_date": now,
        "end_date": None,
        "run_type": "manual",
        "state": "running",
        "conf": {},
        "consumed_asset_events": [],
        "clear_number": 0,
        "partition_key": None,
    }
    runtime_ti = TriggerRunner.create_runtime_ti(ti, data, run)
    context = runtime_ti.get_template_context()
    trigger.task_instance = runtime_ti
    trigger.timeout_after = now + args.timeout  # TaskInstance.defer_task: trigger_timeout
    trigger.render_template_fields(context=context)
    return trigger


def _first(trigger: CodeCheckTaskTrigger) -> TriggerEvent:
    async def first() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger fired no event")

    return asyncio.run(first())


class _TaskInstance:
    """Just enough of a TI for execute_complete in a worker: it records XCom pushes."""

    def __init__(self) -> None:
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value


def _in_worker(dag: DAG, task_id: str) -> Any:
    """The task with its fields rendered, as a worker has it when execute_complete runs."""
    task = dag.get_task(task_id)
    task.render_template_fields({"params": dag.params.dump()})
    return task


def _worker_xcoms(task: Any, payload: dict[str, Any]) -> tuple[dict[str, object], BaseException | None]:
    """What a worker's execute_complete pushes (return_value included) and raises for this event."""
    ti = _TaskInstance()
    try:
        ti.xcom["return_value"] = task.execute_complete({"ti": ti}, payload)
    except Exception as error:
        return ti.xcom, error
    return ti.xcom, None


# --- what the scheduler stores --------------------------------------------------------------------------------


def test_serialized_dag_carries_the_raw_templates_and_the_timeout():
    from airflow.serialization.serialized_objects import DagSerialization

    with _dag() as dag:
        CodeCheckTaskSensor(
            task_id="wait",
            codecheck_task_id="{{ params.scan }}",
            exec_id="{{ ti.xcom_pull(task_ids='start', key='exec_id') }}",
            start_from_trigger=True,
            poke_interval=5,
            timeout=100,
        )
        CodeCheckRunTaskOperator(
            task_id="gate",
            codecheck_task_id="{{ params.scan }}",
            run=False,
            quality_gate="{{ params.gate | tojson }}",
            start_from_trigger=True,
            wait_timeout=300,
            poll_interval=10,
        )
    data = DagSerialization.to_dict(dag)
    text = json.dumps(data)
    assert "codecheck-password" not in text  # no credential anywhere
    tasks = {t["__var"]["task_id"]: t["__var"] for t in data["dag"]["tasks"]}
    assert tasks["wait"]["start_from_trigger"] is True
    assert tasks["gate"]["start_from_trigger"] is True
    scheduler_dag = DagSerialization.from_dict(data)
    wait = scheduler_dag.get_task("wait").start_trigger_args
    gate = scheduler_dag.get_task("gate").start_trigger_args
    assert (
        wait.trigger_cls
        == gate.trigger_cls
        == "airflow_provider_codecheck.triggers.codecheck.CodeCheckTaskTrigger"
    )
    assert wait.next_method == gate.next_method == "execute_complete"
    assert wait.timeout == datetime.timedelta(seconds=100 + timeout_margin(5))
    assert gate.timeout == datetime.timedelta(seconds=300 + timeout_margin(10))
    wait_kwargs = json.dumps(tasks["wait"]["start_trigger_args"]["trigger_kwargs"])
    assert '"{{ params.scan }}"' in wait_kwargs
    assert "xcom_pull(task_ids='start'" in wait_kwargs
    assert '"{{ params.gate | tojson }}"' in json.dumps(tasks["gate"]["start_trigger_args"]["trigger_kwargs"])
    # Set per instance (dataclasses.replace), never on the class: a mapped task gets none (tests/sensors).
    assert CodeCheckTaskSensor.start_trigger_args is None
    assert CodeCheckRunTaskOperator.start_trigger_args is None


def test_the_triggerer_renders_the_templated_fields_into_the_trigger():
    with _dag({"scan": "scan-a", "gate": {"critical": 0}}) as dag:
        CodeCheckTaskSensor(
            task_id="wait",
            codecheck_task_id="{{ params.scan }}",
            codecheck_conn_id="{{ 'codecheck_' + 'default' }}",
            job_id="{{ params.scan }}-job",
            start_from_trigger=True,
        )
        CodeCheckRunTaskOperator(
            task_id="gate",
            codecheck_task_id="{{ params.scan }}",
            run=False,
            quality_gate="{{ params.gate | tojson }}",
            start_from_trigger=True,
        )
    wait = _as_triggerer_builds_it(dag, "wait")
    assert set(wait.template_fields) == {"codecheck_task_id", "codecheck_conn_id", "exec_id", "job_id"}
    assert (wait.codecheck_task_id, wait.codecheck_conn_id, wait.job_id) == (
        "scan-a",
        "codecheck_default",
        "scan-a-job",
    )
    gate = _as_triggerer_builds_it(dag, "gate")
    assert "quality_gate" in gate.template_fields
    assert "run_body" not in gate.template_fields
    assert (gate.codecheck_task_id, gate.quality_gate) == ("scan-a", '{"critical": 0}')  # checked in run()


def test_a_worker_deferral_stores_the_kwargs_it_always_did():
    _, kwargs = CodeCheckTaskTrigger("scan-a", poll_interval=1.0).serialize()
    assert "end_from_trigger" not in kwargs
    assert "quality_gate" not in kwargs


# --- the sensor ends in the triggerer ---------------------------------------------------------------------------


def _sensor_dag(**kwargs: Any) -> DAG:
    with _dag({"scan": kwargs.pop("scan", "scan-a")}) as dag:
        CodeCheckTaskSensor(
            task_id="wait",
            codecheck_task_id="{{ params.scan }}",
            start_from_trigger=True,
            poke_interval=0.2,
            **{"timeout": 60, **kwargs},
        )
    return dag


def test_sensor_success_ends_in_the_triggerer_with_the_workers_xcoms(emulator):
    emulator.add_task(task_id="scan-a", duration_s=0.5, final_status=2, running=True, defects={"major": 2})
    dag = _sensor_dag()
    event = _first(_as_triggerer_builds_it(dag, "wait"))
    assert isinstance(event, TaskSuccessEvent)
    assert set(event.xcoms) == {*XCOM_KEYS, "return_value"}
    assert event.xcoms["status"] == "success"
    assert event.xcoms["task_status"] == 2
    assert event.xcoms["codecheck_task_id"] == "scan-a"  # rendered
    assert event.xcoms["is_access"] is True
    assert event.xcoms["issue_count"] == 2
    # The same keys and values a worker pushes for the same scan (its execute_complete on a plain event).
    worker_trigger = CodeCheckTaskTrigger("scan-a", poll_interval=0.2)
    payload = _first(worker_trigger).payload
    worker = CodeCheckTaskSensor(task_id="wait", codecheck_task_id="scan-a")  # as rendered in a worker
    pushed, error = _worker_xcoms(worker, payload)
    assert error is None
    assert pushed == event.xcoms


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, TaskFailedEvent),  # no retries: failing here is what the worker's CodeCheckScanFailed does
        ({"soft_fail": True}, TaskSkippedEvent),
        ({"never_fail": True}, TaskSkippedEvent),
        ({"retries": 2}, TriggerEvent),  # CodeCheckScanFailed must not be retried: the worker raises it
    ],
)
def test_sensor_failed_scan(emulator, options, expected):
    emulator.add_task(task_id="scan-f", duration_s=0.3, final_status=1, running=True)
    dag = _sensor_dag(scan="scan-f", **options)
    event = _first(_as_triggerer_builds_it(dag, "wait"))
    assert type(event) is expected
    if expected is TriggerEvent:
        assert event.payload["status"] == "failed"
        assert event.payload["started_from_trigger"] is True
        pushed, error = _worker_xcoms(_in_worker(dag, "wait"), event.payload)
        assert isinstance(error, CodeCheckScanFailed)
        assert pushed["status"] == "failed"
    else:
        assert event.xcoms["status"] == "failed"
        assert event.xcoms["task_status"] == 1
        assert "return_value" not in event.xcoms  # pushed only on success, as execute_complete returns


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, TaskFailedEvent),
        ({"soft_fail": True}, TaskSkippedEvent),
        ({"retries": 1}, TriggerEvent),  # AirflowSensorTimeout is never retried: the worker raises it
    ],
)
def test_sensor_timeout_is_enforced_inside_the_trigger(emulator, options, expected):
    emulator.add_task(task_id="scan-slow", duration_s=120, final_status=2, running=True)
    dag = _sensor_dag(scan="scan-slow", timeout=1.0, **options)
    trigger = _as_triggerer_builds_it(dag, "wait")
    began = datetime.datetime.now(datetime.UTC)
    event = _first(trigger)
    took = (datetime.datetime.now(datetime.UTC) - began).total_seconds()
    assert took < 10  # the wait's own deadline (timeout), long before the scheduler's backstop (+ margin)
    assert type(event) is expected
    if expected is TriggerEvent:
        assert event.payload["status"] == "timeout"
        _, error = _worker_xcoms(_in_worker(dag, "wait"), event.payload)
        assert isinstance(error, AirflowSensorTimeout)
    else:
        assert event.xcoms is None  # a timeout pushes nothing, as in a worker


def test_a_restarted_trigger_keeps_the_deadline_the_scheduler_set():
    dag = _sensor_dag(timeout=30)
    first, second = _as_triggerer_builds_it(dag, "wait"), _as_triggerer_builds_it(dag, "wait")
    second.timeout_after = first.timeout_after  # the same task instance's stored trigger_timeout
    end = first.end_from_trigger
    assert end is not None
    first._prepare_rendered(end)
    second._prepare_rendered(end)
    assert first.deadline == second.deadline
    assert first.deadline == pytest.approx(first.timeout_after.timestamp() - timeout_margin(0.2))


def test_a_permanent_error_fails_the_sensor_even_with_soft_fail(emulator):
    dag = _sensor_dag(scan="no-such-task", soft_fail=True, retries=0)
    event = _first(_as_triggerer_builds_it(dag, "wait"))
    assert isinstance(event, TaskFailedEvent)  # CodeCheckWaitAborted: not an AirflowException, never skipped
    assert event.xcoms is None


@pytest.mark.parametrize(("retries", "expected"), [(0, TaskFailedEvent), (2, TriggerEvent)])
def test_an_invalid_rendered_task_id_fails_without_a_wait(emulator, retries, expected):
    dag = _sensor_dag(scan="../etc", retries=retries)
    event = _first(_as_triggerer_builds_it(dag, "wait"))
    assert type(event) is expected
    assert emulator.stats()["requests"] == {}  # nothing was asked
    if expected is TriggerEvent:
        _, error = _worker_xcoms(_in_worker(dag, "wait"), event.payload)
        assert isinstance(error, CodeCheckConfigurationError)  # as execute() would have raised, no retry


def test_conflicting_exec_id_and_job_id_are_a_configuration_error(emulator):
    with _dag() as dag:
        CodeCheckTaskSensor(
            task_id="wait", codecheck_task_id="scan-a", exec_id="e-1", job_id="e-2", start_from_trigger=True
        )
    event = _first(_as_triggerer_builds_it(dag, "wait"))
    assert isinstance(event, TaskFailedEvent)


def test_exec_id_is_waited_for_and_reported(emulator):
    emulator.add_task(task_id="scan-e", duration_s=0.1, final_status=2, running=False)
    first = emulator.commit("scan-e", duration_s=0.2)
    with _dag({"exec": first}) as dag:
        CodeCheckTaskSensor(
            task_id="wait",
            codecheck_task_id="scan-e",
            exec_id="{{ params.exec }}",
            start_from_trigger=True,
            poke_interval=0.2,
        )
    event = _first(_as_triggerer_builds_it(dag, "wait"))
    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms["exec_id"] == first


def test_no_return_value_without_do_xcom_push(emulator):
    emulator.add_task(task_id="scan-a", duration_s=0.2, final_status=2, running=True)
    event = _first(_as_triggerer_builds_it(_sensor_dag(do_xcom_push=False), "wait"))
    assert isinstance(event, TaskSuccessEvent)
    assert "return_value" not in event.xcoms
    assert event.xcoms["status"] == "success"


# --- the run=False operator ends in the triggerer ---------------------------------------------------------------


def _operator_dag(**kwargs: Any) -> DAG:
    with _dag({"scan": kwargs.pop("scan", "scan-o")}) as dag:
        CodeCheckRunTaskOperator(
            task_id="gate",
            codecheck_task_id="{{ params.scan }}",
            run=False,
            start_from_trigger=True,
            poll_interval=0.2,
            **kwargs,
        )
    return dag


def test_operator_success_ends_in_the_triggerer_with_the_workers_xcoms(emulator):
    emulator.add_task(task_id="scan-o", duration_s=0.4, final_status=2, running=True, defects={"major": 3})
    dag = _operator_dag(quality_gate='{"critical": 0, "major": 5}')
    event = _first(_as_triggerer_builds_it(dag, "gate"))
    assert isinstance(event, TaskSuccessEvent)
    assert set(event.xcoms) == {*XCOM_KEYS, "console_url", "return_value"}
    assert event.xcoms["defects"] == {"critical": 0, "major": 3, "minor": 0, "suggestion": 0}
    assert event.xcoms["exec_id"] is None
    assert event.xcoms["console_url"]
    assert event.xcoms["is_access"] is True
    # A worker's execute_complete on the handed-back form of the same event pushes the same.
    payload = {
        **_first(CodeCheckTaskTrigger("scan-o", poll_interval=0.2)).payload,
        "started_from_trigger": True,
    }
    worker = CodeCheckRunTaskOperator(
        task_id="gate", codecheck_task_id="scan-o", run=False, quality_gate='{"critical": 0, "major": 5}'
    )
    pushed, error = _worker_xcoms(worker, payload)
    assert error is None
    assert pushed == event.xcoms


@pytest.mark.parametrize(("retries", "expected"), [(0, TaskFailedEvent), (1, TriggerEvent)])
def test_operator_quality_gate_breach(emulator, retries, expected):
    emulator.add_task(task_id="scan-o", duration_s=0.3, final_status=2, running=True, defects={"critical": 1})
    dag = _operator_dag(quality_gate={"critical": 0}, retries=retries)
    event = _first(_as_triggerer_builds_it(dag, "gate"))
    assert type(event) is expected
    if expected is TriggerEvent:
        pushed, error = _worker_xcoms(_in_worker(dag, "gate"), event.payload)
        assert isinstance(error, CodeCheckQualityGateFailed)
        assert pushed["console_url"]
        assert pushed["defects"]["critical"] == 1
    else:
        assert event.xcoms["defects"]["critical"] == 1
        assert event.xcoms["status"] == "success"
    assert emulator.stats()["runs"] == {}  # run=False: nothing started, in the triggerer or the worker


def test_operator_service_gate_and_failed_scan(emulator):
    emulator.add_task(task_id="scan-g", duration_s=0.3, final_status=2, running=True, defects={"critical": 2})
    emulator.add_task(task_id="scan-f", duration_s=0.3, final_status=3, running=True)
    event = _first(_as_triggerer_builds_it(_operator_dag(scan="scan-g", fail_on_service_gate=True), "gate"))
    assert isinstance(event, TaskFailedEvent)
    assert event.xcoms["is_access"] is False
    event = _first(_as_triggerer_builds_it(_operator_dag(scan="scan-f"), "gate"))
    assert isinstance(event, TaskFailedEvent)
    assert event.xcoms["status"] == "stopped"
    event = _first(_as_triggerer_builds_it(_operator_dag(scan="scan-f", fail_on_failure=False), "gate"))
    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms["return_value"]["status"] == "stopped"


def test_operator_invalid_rendered_gate_is_a_configuration_error(emulator):
    emulator.add_task(task_id="scan-o", duration_s=0.2, final_status=2, running=True)
    event = _first(_as_triggerer_builds_it(_operator_dag(quality_gate="{{ 'not json' }}", retries=1), "gate"))
    assert type(event) is TriggerEvent  # retries: the worker raises CodeCheckConfigurationError (no retry)
    _, error = _worker_xcoms(
        _in_worker(_operator_dag(quality_gate="{{ 'not json' }}"), "gate"), event.payload
    )
    assert isinstance(error, CodeCheckConfigurationError)


def test_start_from_trigger_needs_run_false():
    with pytest.raises(CodeCheckConfigurationError, match="run=False"):
        CodeCheckRunTaskOperator(task_id="x", codecheck_task_id="t", start_from_trigger=True)
    with pytest.raises(CodeCheckConfigurationError, match="run=False"):
        CodeCheckRunTaskOperator(
            task_id="x", codecheck_task_id="t", run=False, wait_for_completion=False, start_from_trigger=True
        )


# --- the end-event rules alone ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "end", "expected"),
    [
        (None, {}, TaskSuccessEvent),
        (CodeCheckScanFailed("x"), {"kind": "sensor", "soft_fail": True, "retries": 3}, TaskSkippedEvent),
        (CodeCheckScanFailed("x"), {"kind": "operator", "soft_fail": True}, TaskFailedEvent),  # no soft_fail
        (CodeCheckServiceGateFailed("x"), {"kind": "operator", "retries": 1}, None),
        (AirflowSensorTimeout("x"), {"kind": "sensor", "never_fail": True}, TaskSkippedEvent),
        (CodeCheckConfigurationError("x"), {"kind": "sensor", "soft_fail": True}, TaskFailedEvent),
        (
            CodeCheckConfigurationError("x"),
            {"kind": "sensor", "soft_fail": True, "retries": 2},
            TaskFailedEvent,
        ),
        (CodeCheckConfigurationError("x"), {"kind": "sensor", "retries": 2}, None),
    ],
)
def test_task_end_event_follows_airflows_rules(error, end, expected):
    event = task_end_event(Verdict({"status": "s"}, error), end, {})
    assert (None if event is None else type(event)) is expected
