"""Run one DAG of the dags folder with ``dag.test()`` in a fresh process and print a JSON summary.

The secret scan runs its DAG here rather than inside pytest: inside pytest, Airflow's log output goes to a
stream that pytest's capture opened at import time, so neither capfd nor caplog sees the task logs. A child
process's stdout and stderr hold every line Airflow logs.

Usage: ``python reliability_dag_runner.py <dag_id>``; the last stdout line is
``RESULT {"states": {...}, "xcom": {task_id: {key: value}}}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# tests/, where pytest finds airflow_support (beside the root conftest).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import airflow_support

XCOM_KEYS = ("return_value", "status", "exec_id", "console_url", "task_status", "info")


def main(dag_id: str) -> None:
    dag_run = airflow_support.load_dag(dag_id).test()
    xcom = {
        ti.task_id: {key: airflow_support.xcom(dag_run, ti.task_id, key) for key in XCOM_KEYS}
        for ti in dag_run.get_task_instances()
    }
    print(
        "RESULT " + json.dumps({"states": airflow_support.ti_states(dag_run), "xcom": xcom}, default=str),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1])
