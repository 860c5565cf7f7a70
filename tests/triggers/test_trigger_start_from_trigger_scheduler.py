"""start_from_trigger through Airflow 3.3.2's own scheduler and triggerer functions on the SQLite metadata DB,
against the emulator, without starting any process: ``DagRun.schedule_tis`` defers the task itself (no worker),
``TriggerRunnerSupervisor._create_workload`` ships the DAG, the runner's steps render the trigger, and
``Trigger.submit_event`` ends the task instance with its XComs. The running stack (scheduler + triggerer,
0 worker runs counted) is the scale run's (tests/e2e).
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_codecheck.triggering import unsupported_reason

if unsupported_reason() is not None:
    pytest.skip(f"start_from_trigger needs Airflow >= 3.3.2: {unsupported_reason()}", allow_module_level=True)

from airflow_support import build_dag

from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.results import XCOM_KEYS
from airflow_provider_codecheck.testing import connection_json

SENSOR = "CodeCheckTaskSensor"


@pytest.fixture
def emulator(codecheck_emulator_clean: Any, monkeypatch: pytest.MonkeyPatch, airflow_db: None) -> Any:
    """A reset emulator, with ``codecheck_default`` pointing at it (as tests/airflow/conftest.py's)."""
    monkeypatch.setenv("AIRFLOW_CONN_CODECHECK_DEFAULT", connection_json(codecheck_emulator_clean.base_url))
    iam.TOKEN_CACHE.clear()
    return codecheck_emulator_clean


def _scheduled(dag: Any, conf: dict[str, Any], session: Any) -> Any:
    """Sync the DAG to the DB, create a run, and let the scheduler's ``schedule_tis`` take its tasks."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dagrun import DagRun, get_or_create_dagrun
    from airflow.sdk import timezone
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    manager = DagBundlesManager()
    manager.sync_bundles_to_db(session=session)
    session.commit()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)
    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    now = timezone.utcnow()
    run = get_or_create_dagrun(
        dag=scheduler_dag,
        start_date=now,
        logical_date=now,
        data_interval=coerce_to_core_timetable(dag.timetable).infer_manual_data_interval(run_after=now),
        run_after=now,
        run_id=DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=now, run_after=now),
        session=session,
        conf=conf,
        triggered_by=DagRunTriggeredByType.TEST,
        triggering_user_name="sft_test",
    )
    schedulable, _ = run.update_state(session=session)
    run.schedule_tis(schedulable, session=session)  # the scheduler's own call: defer_task for each
    session.commit()
    return run


def _triggerer_runs(trigger_id: int, session: Any) -> Any:
    """The 3.3.2 supervisor's workload and the runner's steps (create_triggers, run_trigger); the event."""
    from airflow.jobs.triggerer_job_runner import TriggerRunner, TriggerRunnerSupervisor
    from airflow.models.dagbag import DBDagBag
    from airflow.models.trigger import Trigger
    from airflow.serialization.decoders import smart_decode_trigger_kwargs

    row = session.get(Trigger, trigger_id)
    supervisor = SimpleNamespace(job=None, id=uuid.uuid4(), logger_cache={})
    workload = TriggerRunnerSupervisor._create_workload(
        supervisor, row, DBDagBag(), lambda **_: "trigger.log", session
    )
    assert workload.dag_data is not None  # start_from_trigger: the DAG is shipped for rendering
    kwargs = {
        k: smart_decode_trigger_kwargs(v)
        for k, v in Trigger._decrypt_kwargs(workload.encrypted_kwargs).items()
    }
    module, _, name = workload.classpath.rpartition(".")
    trigger = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    runtime_ti = TriggerRunner.create_runtime_ti(workload.ti, workload.dag_data, workload.dag_run_data)
    context = runtime_ti.get_template_context()
    trigger.task_instance = runtime_ti
    trigger.timeout_after = workload.timeout_after
    trigger.render_template_fields(context=context)

    async def first() -> Any:
        async for event in trigger.run():
            return event
        raise AssertionError("no event")

    return asyncio.run(first())


def _end_in_triggerer(
    dag_id: str, tasks: dict[str, tuple[str, dict[str, Any]]], conf: dict[str, Any]
) -> tuple[dict[str, Any], Any, Any]:
    from airflow import settings
    from airflow.models.trigger import Trigger
    from airflow.utils.state import TaskInstanceState

    dag = build_dag(dag_id, tasks)
    session = settings.Session()
    run = _scheduled(dag, conf, session)
    tis = {ti.task_id: ti for ti in run.get_task_instances(session=session)}
    for ti in tis.values():
        assert ti.state == TaskInstanceState.DEFERRED  # straight to the triggerer: never queued for a worker
        assert ti.trigger_id is not None
        assert ti.next_method == "execute_complete"
        event = _triggerer_runs(ti.trigger_id, session)
        Trigger.submit_event(ti.trigger_id, event, session=session)  # the supervisor's handle_events
        session.commit()
    session.expire_all()
    return {ti.task_id: ti for ti in run.get_task_instances(session=session)}, session, dag


def _state(ti: Any) -> str:
    return str(getattr(ti.state, "value", ti.state))


def test_the_scheduler_defers_and_the_triggerer_ends_the_sensor(emulator):
    emulator.add_task(task_id="scan-db", duration_s=0.4, final_status=2, running=True, defects={"minor": 1})
    emulator.add_task(task_id="scan-bad", duration_s=0.3, final_status=1, running=True)
    wait = {
        "codecheck_task_id": "{{ dag_run.conf['scan'] }}",
        "start_from_trigger": True,
        "poke_interval": 0.2,
    }
    tis, _, _ = _end_in_triggerer(
        "sft_scheduler",
        {
            "wait": (SENSOR, {**wait, "timeout": 60}),
            "soft": (SENSOR, {**wait, "codecheck_task_id": "scan-bad", "soft_fail": True, "timeout": 60}),
            "lost": (SENSOR, {**wait, "codecheck_task_id": "no-such-task", "retries": 1, "timeout": 60}),
        },
        {"scan": "scan-db"},
    )
    assert _state(tis["wait"]) == "success"
    assert tis["wait"].try_number == 1
    pushed = {key: tis["wait"].xcom_pull(task_ids="wait", key=key) for key in (*XCOM_KEYS, "return_value")}
    assert pushed["codecheck_task_id"] == "scan-db"  # rendered from the run's conf in the triggerer
    assert pushed["status"] == "success"
    assert pushed["issue_count"] == 1
    assert pushed["return_value"]["status"] == "success"
    assert _state(tis["soft"]) == "skipped"
    assert tis["soft"].xcom_pull(task_ids="soft", key="status") == "failed"
    # A permanent API error fails (CodeCheckWaitAborted is retried like any failure): 3.3.2 routes the
    # TaskFailedEvent to a retry, as a worker's failure would be.
    assert _state(tis["lost"]) == "up_for_retry"


def test_the_operator_ends_in_the_triggerer_or_hands_a_no_retry_failure_to_a_worker(emulator):
    emulator.add_task(task_id="scan-ok", duration_s=0.3, final_status=2, running=True, defects={"major": 2})
    emulator.add_task(
        task_id="scan-crit", duration_s=0.3, final_status=2, running=True, defects={"critical": 1}
    )
    gate = {"run": False, "start_from_trigger": True, "poll_interval": 0.2, "quality_gate": {"critical": 0}}
    tis, session, dag = _end_in_triggerer(
        "sft_scheduler_operator",
        {
            "ok": ("CodeCheckRunTaskOperator", {**gate, "codecheck_task_id": "scan-ok"}),
            "breach": ("CodeCheckRunTaskOperator", {**gate, "codecheck_task_id": "scan-crit"}),
            "breach_retries": (
                "CodeCheckRunTaskOperator",
                {**gate, "codecheck_task_id": "scan-crit", "retries": 2},
            ),
        },
        {},
    )
    assert _state(tis["ok"]) == "success"
    assert tis["ok"].xcom_pull(task_ids="ok", key="defects")["major"] == 2
    assert _state(tis["breach"]) == "failed"  # no retries: failing here is what the worker would do
    assert tis["breach"].xcom_pull(task_ids="breach", key="defects")["critical"] == 1
    # CodeCheckQualityGateFailed must not be retried, and a TaskFailedEvent would be: a worker resumes the task
    # at execute_complete with the event, and raises it there.
    assert _state(tis["breach_retries"]) == "scheduled"
    assert tis["breach_retries"].next_method == "execute_complete"
    # The worker's part, by the Task SDK (as dag.test() runs a task): it fails without a retry and pushes
    # what execute() would have pushed before waiting.
    from airflow.sdk.definitions.dag import _run_task

    handed = tis["breach_retries"]
    _run_task(ti=handed, task=dag.task_dict["breach_retries"])
    session.expire_all()
    handed = session.merge(handed)
    session.refresh(handed)
    assert _state(handed) == "failed"
    assert handed.xcom_pull(task_ids="breach_retries", key="defects")["critical"] == 1
    assert "console_url" in {x.key for x in _xcoms(handed, session)}
    assert emulator.stats()["runs"] == {}


def _xcoms(ti: Any, session: Any) -> list[Any]:
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    return list(
        session.scalars(
            select(XComModel).where(
                XComModel.dag_id == ti.dag_id, XComModel.run_id == ti.run_id, XComModel.task_id == ti.task_id
            )
        )
    )
