"""Example 3: a quality gate: fail the task when a scan finds too many serious defects."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator

with DAG(
    dag_id="example_codecheck_quality_gate",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"codecheck_task_id": "gate-scan"},
    tags=["codecheck", "example"],
) as dag:
    gate = CodeCheckRunTaskOperator(
        task_id="scan_with_gate",
        codecheck_task_id="{{ params.codecheck_task_id }}",
        deferrable=True,
        poll_interval=1,
        wait_timeout=600,
        quality_gate={"critical": 0, "major": 10},
    )

    @task
    def deploy(defects: dict[str, int]) -> str:
        return f"deploying; defects {defects}"

    deploy(gate.output["defects"])
