"""Example 6: wait for a scan started elsewhere without any worker run (Airflow >= 3.3.2, start_from_trigger).

The scheduler hands both tasks straight to the triggerer, which renders ``{{ params.codecheck_task_id }}``,
waits, reads the verdict (and, for the operator, the defect counts and the quality gate) and ends the task
there, pushing the same XComs as a worker would. On older Airflow, and in ``dag.test()``, the tasks defer from a
worker as usual (one log line says so). See docs/start-from-trigger.md.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator
from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor

with DAG(
    dag_id="example_codecheck_start_from_trigger",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"codecheck_task_id": "nightly-scan"},
    tags=["codecheck", "example"],
) as dag:
    # A sensor: success, failed/stopped (soft_fail skips), timeout — all decided in the triggerer.
    wait = CodeCheckTaskSensor(
        task_id="wait_for_scan",
        codecheck_task_id="{{ params.codecheck_task_id }}",
        start_from_trigger=True,
        poke_interval=1,
        timeout=600,
    )

    # The operator without starting a scan (run=False): it also reads the counts and checks the gate there.
    gate = CodeCheckRunTaskOperator(
        task_id="gate_latest_scan",
        codecheck_task_id="{{ params.codecheck_task_id }}",
        run=False,
        start_from_trigger=True,
        quality_gate={"critical": 0},
        poll_interval=1,
        wait_timeout=600,
    )

    @task
    def summarize(status: str, defects: dict[str, int] | None) -> str:
        return f"scan {status}; defects {defects}"

    summarize(wait.output["status"], gate.output["defects"])
    wait >> gate
