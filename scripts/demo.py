"""`make demo`: the emulator, example DAG 1 through real Airflow on SQLite, and a short summary.

Needs no account and no network: the emulator plays CodeArts Check and IAM on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from airflow_provider_codecheck import testing

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "example_codecheck_run_and_branch"
CODECHECK_TASK_ID = "demo-scan"


def run_dag(emulator: testing.EmulatorProcess) -> None:
    os.environ.update([testing.connection_env("codecheck_default", emulator.base_url, "password")])
    from airflow.utils import db

    db.initdb()
    sys.path.insert(0, str(ROOT / "example_dags"))
    dag = __import__(DAG_ID).dag
    dag_run = dag.test()

    print("\n=== airflow-provider-codecheck demo ===")
    print(f"DAG {DAG_ID}: {dag_run.state}")
    scan_ti = None
    for ti in sorted(dag_run.get_task_instances(), key=lambda t: t.task_id):
        print(f"  task {ti.task_id:<16} {ti.state}")
        if ti.task_id == "run_scan":
            scan_ti = ti
    if scan_ti is not None:
        for key in ("status", "task_status", "ratio", "exec_id", "defects"):
            print(f"  XCom run_scan.{key:<12} {scan_ti.xcom_pull(task_ids='run_scan', key=key)!r}")
    stats = emulator.admin.stats()
    print(f"  emulator: {stats['requests']}, IAM tokens issued {stats['iam_tokens_issued']}")
    if str(dag_run.state) not in ("success", "DagRunState.SUCCESS"):
        raise SystemExit(1)


def main() -> None:
    home = os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="codecheck-demo-")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "example_dags")
    try:
        with testing.spawn_emulator() as emulator:
            print(f"emulator at {emulator.base_url}")
            emulator.admin.add_task(
                task_id=CODECHECK_TASK_ID,
                duration_s=3.0,
                final_status=2,
                running=False,
                defects={"critical": 0, "major": 2, "minor": 5, "suggestion": 11},
            )
            run_dag(emulator)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
