"""Writing test DAG files into the dags folder: Airflow 3's dag.test() runs only DAGs found there."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_dag(
    dag_id: str, tasks: dict[str, tuple[str, dict[str, Any]]], edges: Iterable[tuple[str, str]] = ()
) -> Path:
    """Write a DAG of provider tasks into the dags folder and return its path.

    ``tasks`` maps task ids to (class name from the provider, keyword arguments as Python literals);
    ``edges`` are (upstream, downstream) task id pairs.
    """
    lines = [
        "import datetime",
        "import pendulum",
        "from airflow.providers.common.compat.sdk import DAG",
        "from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator",
        "from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor",
        f"with DAG(dag_id={dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz='UTC'),"
        " catchup=False) as dag:",
    ]
    for task_id, (cls, kwargs) in tasks.items():
        args = "".join(f", {key}={value!r}" for key, value in kwargs.items())
        lines.append(f"    {task_id} = {cls}(task_id={task_id!r}{args})")
    lines.extend(f"    {upstream} >> {downstream}" for upstream, downstream in edges)
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{dag_id}.py"
    path.write_text("\n".join(lines) + "\n")
    return path
