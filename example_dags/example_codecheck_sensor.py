"""Example 2: wait (deferred) for a scan started elsewhere, then read its status and ratio from XCom."""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor

with DAG(
    dag_id="example_codecheck_sensor",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"codecheck_task_id": "nightly-scan"},
    tags=["codecheck", "example"],
) as dag:
    wait = CodeCheckTaskSensor(
        task_id="wait_for_scan",
        codecheck_task_id="{{ params.codecheck_task_id }}",
        deferrable=True,
        poke_interval=1,
        timeout=600,
    )

    @task
    def summarize(status: str, ratio: int | None) -> str:
        return f"scan {status} at {ratio}%"

    summarize(
        wait.output["status"],
        wait.output["ratio"],
    )
