"""Example 1: run a CodeArts Check scan, wait for it in the triggerer, continue only on success.

The operator pushes ``status``/``ratio``/``defects`` to XCom; a branch picks the downstream path.
Point the ``codecheck_default`` connection at CodeArts Check (or at the emulator: ``make demo``).
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator

with DAG(
    dag_id="example_codecheck_run_and_branch",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"codecheck_task_id": "demo-scan"},
    tags=["codecheck", "example"],
) as dag:
    scan = CodeCheckRunTaskOperator(
        task_id="run_scan",
        codecheck_task_id="{{ params.codecheck_task_id }}",
        deferrable=True,
        poll_interval=1,
        wait_timeout=600,
        fail_on_failure=False,  # let the branch decide instead of failing here
    )

    @task.branch
    def on_verdict(status: str) -> str:
        return "publish" if status == "success" else "report_failure"

    @task
    def publish(defects: dict[str, int]) -> str:
        return f"release approved; defects by severity: {defects}"

    @task
    def report_failure(status: str) -> str:
        return f"scan ended {status}; release held"

    branch = on_verdict(scan.output["status"])
    branch >> [publish(scan.output["defects"]), report_failure(scan.output["status"])]
