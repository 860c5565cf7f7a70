"""start_from_trigger where it cannot work — Airflow < 3.3.2, mapped tasks, dag.test() — falls back to today's
deferral from a worker, with one log line; real Airflow (dag.test on SQLite) against the emulator.

Runs on both venvs: on 2.11 the flag is never handed to the scheduler (it would start the trigger with
unrendered templates); on 3.3.2 dag.test() runs execute() in process, so the same fallback is what it shows.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow_support import build_dag, load_dag, polls_by, ti_states, xcom

from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor
from airflow_provider_codecheck.testing import connection_json
from airflow_provider_codecheck.triggering import unsupported_reason

SENSOR = "CodeCheckTaskSensor"


@pytest.fixture
def emulator(codecheck_emulator_clean: Any, monkeypatch: pytest.MonkeyPatch, airflow_db: None) -> Any:
    """A reset emulator, with ``codecheck_default`` pointing at it (as tests/airflow/conftest.py's)."""
    monkeypatch.setenv("AIRFLOW_CONN_CODECHECK_DEFAULT", connection_json(codecheck_emulator_clean.base_url))
    iam.TOKEN_CACHE.clear()
    return codecheck_emulator_clean


def test_the_flag_reaches_the_scheduler_only_where_it_is_supported():
    sensor = CodeCheckTaskSensor(task_id="s", codecheck_task_id="{{ params.scan }}", start_from_trigger=True)
    assert sensor.deferrable is True  # implied: the fallback defers from the worker
    if unsupported_reason() is None:
        assert sensor.start_from_trigger is True
        assert sensor.start_trigger_args.trigger_kwargs["codecheck_task_id"] == "{{ params.scan }}"
    else:  # 2.11 would start the trigger with "{{ params.scan }}" verbatim: never enabled there
        assert sensor.start_from_trigger is False
        assert sensor.start_trigger_args is None
    plain = CodeCheckTaskSensor(task_id="p", codecheck_task_id="t")
    assert plain.start_from_trigger is False
    assert plain.start_trigger_args is None


def test_sensor_falls_back_to_deferring_from_the_worker_with_one_log_line(emulator, fallback_lines):
    emulator.add_task(task_id="scan-a", duration_s=0.8, final_status=2, running=True)
    kwargs = {
        "codecheck_task_id": "scan-a",
        "start_from_trigger": True,
        "mode": "reschedule",  # deferral is implied by start_from_trigger
        "poke_interval": 0.3,
        "timeout": 60,
    }
    dag = build_dag("sft_sensor_fallback", {"wait": (SENSOR, kwargs)})
    dag_run = dag.test()
    assert ti_states(dag_run) == {"wait": "success"}
    assert xcom(dag_run, "wait", "status") == "success"
    assert xcom(dag_run, "wait", "is_access") is True
    assert polls_by(emulator.stats(), "aiohttp") >= 1  # waited in the trigger: deferred, as today
    assert fallback_lines() == 1


def test_failed_scan_in_the_fallback_fails_and_soft_fail_skips(emulator):
    emulator.add_task(task_id="scan-f", duration_s=0.5, final_status=1, running=True)
    kwargs = {"codecheck_task_id": "scan-f", "start_from_trigger": True, "poke_interval": 0.3, "timeout": 60}
    dag = build_dag(
        "sft_sensor_fallback_fail",
        {"hard": (SENSOR, kwargs), "soft": (SENSOR, {**kwargs, "soft_fail": True})},
    )
    dag_run = dag.test()
    assert ti_states(dag_run) == {"hard": "failed", "soft": "skipped"}


def _write_mapped_dag(dag_id: str) -> None:
    import os

    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{dag_id}.py"
    path.write_text(
        "import pendulum\n"
        "from airflow.providers.common.compat.sdk import DAG\n"
        "from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor\n"
        f"with DAG(dag_id={dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz='UTC')) as dag:\n"
        "    CodeCheckTaskSensor.partial(task_id='wait', start_from_trigger=True, poke_interval=0.3, timeout=60)"
        ".expand(codecheck_task_id=['scan-m1', 'scan-m2'])\n"
    )


def test_a_mapped_task_is_never_started_from_the_triggerer(emulator, fallback_lines):
    # Airflow 3.x does not start mapped tasks from the triggerer (GH-52141): the class has no
    # start_trigger_args, so the scheduler finds none and queues the task for a worker, which defers.
    emulator.add_task(task_id="scan-m1", duration_s=0.5, final_status=2, running=True)
    emulator.add_task(task_id="scan-m2", duration_s=0.5, final_status=2, running=True)
    _write_mapped_dag("sft_mapped")
    dag = load_dag("sft_mapped")
    if unsupported_reason() is None:
        from airflow.serialization.serialized_objects import DagSerialization

        mapped = DagSerialization.from_dict(DagSerialization.to_dict(dag)).get_task("wait")
        assert (
            mapped.start_trigger_args is None
        )  # TaskInstance.defer_task then returns False: a worker runs it
    dag_run = dag.test()
    states = sorted(str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances())
    assert states == ["success", "success"]
    assert polls_by(emulator.stats(), "aiohttp") >= 2  # each mapped task deferred from its worker
    assert fallback_lines() == 2  # one line per task


def test_timeout_in_the_fallback_is_the_sensors(emulator):
    emulator.add_task(task_id="scan-slow", duration_s=120, final_status=2, running=True)
    kwargs = {
        "codecheck_task_id": "scan-slow",
        "start_from_trigger": True,
        "poke_interval": 0.3,
        "timeout": 1.5,
    }
    dag = build_dag(
        "sft_sensor_fallback_timeout",
        {"wait": (SENSOR, kwargs), "wait_soft": (SENSOR, {**kwargs, "soft_fail": True})},
    )
    began = datetime.datetime.now()
    dag_run = dag.test()
    assert ti_states(dag_run) == {"wait": "failed", "wait_soft": "skipped"}
    assert (datetime.datetime.now() - began).total_seconds() < 60


def test_the_start_from_trigger_example_dag_runs(emulator):
    emulator.add_task(
        task_id="nightly-scan", duration_s=0.8, final_status=2, running=True, defects={"major": 1}
    )
    dag_run = load_dag("example_codecheck_start_from_trigger").test()
    assert ti_states(dag_run) == {
        "wait_for_scan": "success",
        "gate_latest_scan": "success",
        "summarize": "success",
    }
    assert xcom(dag_run, "summarize", "return_value") == (
        "scan success; defects {'critical': 0, 'major': 1, 'minor': 0, 'suggestion': 0}"
    )
