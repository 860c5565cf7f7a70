"""Example 4: start a scan without waiting, do other work, then wait for *that* scan with the sensor.

The sensor gets the run's ``exec_id`` from the operator's XCom and asks progress for that execution
(``job_id=exec_id``), so it never returns the previous scan's verdict, which the service keeps reporting for a
while after a run starts.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator
from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor

with DAG(
    dag_id="example_codecheck_start_then_wait",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"codecheck_task_id": "demo-scan"},
    tags=["codecheck", "example"],
) as dag:
    start = CodeCheckRunTaskOperator(
        task_id="start_scan",
        codecheck_task_id="{{ params.codecheck_task_id }}",
        wait_for_completion=False,
    )
    wait = CodeCheckTaskSensor(
        task_id="wait_for_scan",
        codecheck_task_id="{{ params.codecheck_task_id }}",
        exec_id="{{ ti.xcom_pull(task_ids='start_scan', key='exec_id') }}",
        deferrable=True,
        poke_interval=1,
        timeout=600,
    )
    start >> wait
