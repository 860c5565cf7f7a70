"""The run=False operator with start_from_trigger where it cannot start in the triggerer (Airflow < 3.3.2,
dag.test()): it defers from a worker as today, with one log line; real Airflow against the emulator."""

from __future__ import annotations

from typing import Any

import pytest
from airflow_support import build_dag, polls_by, ti_states, xcom

from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.exceptions import CodeCheckConfigurationError
from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator
from airflow_provider_codecheck.testing import connection_json
from airflow_provider_codecheck.triggering import unsupported_reason

OPERATOR = "CodeCheckRunTaskOperator"


@pytest.fixture
def emulator(codecheck_emulator_clean: Any, monkeypatch: pytest.MonkeyPatch, airflow_db: None) -> Any:
    """A reset emulator, with ``codecheck_default`` pointing at it (as tests/airflow/conftest.py's)."""
    connection = connection_json(
        codecheck_emulator_clean.base_url, region="cn-north-4", project_id="0123456789abcdef0123456789abcdef"
    )
    monkeypatch.setenv("AIRFLOW_CONN_CODECHECK_DEFAULT", connection)
    iam.TOKEN_CACHE.clear()
    return codecheck_emulator_clean


def test_start_from_trigger_needs_a_run_false_waiting_operator():
    for kwargs in ({}, {"run": True}, {"run": False, "wait_for_completion": False}):
        with pytest.raises(CodeCheckConfigurationError, match="run=False"):
            CodeCheckRunTaskOperator(task_id="x", codecheck_task_id="t", start_from_trigger=True, **kwargs)
    operator = CodeCheckRunTaskOperator(
        task_id="x", codecheck_task_id="t", run=False, deferrable=False, start_from_trigger=True
    )
    assert operator.deferrable is True  # implied
    assert operator.start_from_trigger is (unsupported_reason() is None)


def test_operator_falls_back_to_deferring_from_the_worker(emulator, fallback_lines):
    emulator.add_task(task_id="scan-o", duration_s=0.6, final_status=2, running=True, defects={"major": 2})
    emulator.add_task(task_id="scan-b", duration_s=0.6, final_status=2, running=True, defects={"critical": 1})
    common = {"run": False, "start_from_trigger": True, "poll_interval": 0.3}
    dag = build_dag(
        "sft_operator_fallback",
        {
            "ok": (OPERATOR, {"codecheck_task_id": "scan-o", "quality_gate": {"critical": 0}, **common}),
            "breach": (OPERATOR, {"codecheck_task_id": "scan-b", "quality_gate": {"critical": 0}, **common}),
        },
    )
    dag_run = dag.test()
    assert ti_states(dag_run) == {"ok": "success", "breach": "failed"}
    assert xcom(dag_run, "ok", "defects")["major"] == 2
    assert xcom(dag_run, "ok", "exec_id") is None
    assert xcom(dag_run, "ok", "console_url")
    assert emulator.stats()["runs"] == {}  # run=False: nothing started
    assert polls_by(emulator.stats(), "aiohttp") >= 2  # deferred, as today
    assert fallback_lines() == 2
