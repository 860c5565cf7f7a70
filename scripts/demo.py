"""`make demo`: the emulator, example DAG 1 through real Airflow on SQLite, and a short summary.

Needs no account and no network: the emulator plays CodeArts Check and IAM on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "example_codecheck_run_and_branch"
CODECHECK_TASK_ID = "demo-scan"


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_codecheck.emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    base_url = proc.stdout.readline().strip()
    if not base_url.startswith("http"):
        proc.kill()
        raise SystemExit(f"emulator did not start (first line: {base_url!r})")
    return proc, base_url


def admin(base_url: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base_url + path,
        data=data,
        headers={"Content-Type": "application/json"},
        method="POST" if data else "GET",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        result: dict[str, object] = json.loads(reply.read())
        return result


def run_dag(base_url: str) -> None:
    from airflow_provider_codecheck.emulator import defaults

    os.environ["AIRFLOW_CONN_CODECHECK_DEFAULT"] = json.dumps(
        {
            "conn_type": "huaweicloud_codecheck",
            "host": base_url,
            "login": defaults.IAM_USER,
            "password": defaults.IAM_PASSWORD,
            "extra": {"auth_type": "password", "domain_name": defaults.IAM_DOMAIN, "iam_endpoint": base_url},
        }
    )
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
    stats = admin(base_url, "/_emulator/stats")
    print(f"  emulator: {stats['requests']}, IAM tokens issued {stats['iam_tokens_issued']}")
    if str(dag_run.state) not in ("success", "DagRunState.SUCCESS"):
        raise SystemExit(1)


def main() -> None:
    home = os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="codecheck-demo-")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "example_dags")
    proc, base_url = start_emulator()
    try:
        print(f"emulator at {base_url}")
        admin(
            base_url,
            "/_emulator/tasks",
            {
                "task_id": CODECHECK_TASK_ID,
                "duration_s": 3.0,
                "final_status": 2,
                "running": False,
                "defects": {"critical": 0, "major": 2, "minor": 5, "suggestion": 11},
            },
        )
        run_dag(base_url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
