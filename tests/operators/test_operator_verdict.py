"""B4: a verdict once seen is never lost, even when the defect counts cannot be read afterwards."""

from __future__ import annotations

import datetime

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow_support import RecordingTaskInstance, build_dag, ti_states, xcom

from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator

pytestmark = pytest.mark.usefixtures("airflow_db")

OPERATOR = "CodeCheckRunTaskOperator"
# Five 500s on the defects statistic: one more than the default retry policy's 5 attempts can absorb is not
# needed; exactly max_attempts exhausts them.
STATISTIC_DOWN = [{"kind": "http_500", "count": 5, "routes": ["defects_statistic"]}]


def _add(default_conn_emulator, task_id):
    default_conn_emulator.add_task(
        task_id=task_id,
        duration_s=0.3,
        final_status=2,
        running=False,
        defects={"critical": 1},
        faults=STATISTIC_DOWN,
    )


@pytest.mark.parametrize("deferrable", [False, True])
def test_verdict_is_pushed_when_defect_counts_fail(default_conn_emulator, deferrable):
    _add(default_conn_emulator, "v-plain")
    _add(default_conn_emulator, "v-gated")
    common = {
        "deferrable": deferrable,
        "poll_interval": 0.2,
        "retries": 2,
        "retry_delay": datetime.timedelta(0),
    }
    dag = build_dag(
        f"verdict_kept_{deferrable}",
        {
            "plain": (OPERATOR, {"codecheck_task_id": "v-plain", **common}),
            "gated": (OPERATOR, {"codecheck_task_id": "v-gated", "quality_gate": {"critical": 5}, **common}),
        },
    )
    dag_run = dag.test()
    # Without a gate the verdict stands; with one, the task fails without an Airflow retry.
    assert ti_states(dag_run) == {"plain": "success", "gated": "failed"}
    for task in ("plain", "gated"):
        assert xcom(dag_run, task, "status") == "success"
        assert xcom(dag_run, task, "task_status") == 2
        assert xcom(dag_run, task, "defects") is None
    assert default_conn_emulator.stats()["runs"] == {"v-plain": 1, "v-gated": 1}  # no second scan


def test_gate_without_counts_fails_without_retry_naming_the_error(default_conn_emulator):
    _add(default_conn_emulator, "v-msg")
    operator = CodeCheckRunTaskOperator(
        task_id="scan", codecheck_task_id="v-msg", quality_gate={"critical": 5}
    )
    event = {
        "status": "success",
        "codecheck_task_id": "v-msg",
        "exec_id": "e",
        "task_status": 2,
        "ratio": 100,
        "info": None,
        "message": "ended",
    }
    ti = RecordingTaskInstance()
    with pytest.raises(AirflowFailException, match=r"APIGW\.0500") as raised:
        operator.execute_complete({"ti": ti}, event)
    assert "request id" in str(raised.value)
    assert ti.xcom["status"] == "success"
