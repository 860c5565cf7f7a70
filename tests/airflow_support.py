"""Helpers for tests that run real Airflow against the emulator: DAG files in the dags folder, runs, results.

Airflow 3's ``dag.test()`` runs only DAGs found in the dags folder, so tests write their DAGs there
(``write_dag``); the root conftest removes each test's files after it. Airflow is imported only by the
functions that need it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

WRITTEN_DAGS: list[Path] = []
"""DAG files written by the running test (removed after it by ``remove_written_dags``)."""


def dags_folder() -> Path:
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


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
    path = dags_folder() / f"{dag_id}.py"
    path.write_text("\n".join(lines) + "\n")
    WRITTEN_DAGS.append(path)
    return path


def remove_written_dags() -> None:
    while WRITTEN_DAGS:
        WRITTEN_DAGS.pop().unlink(missing_ok=True)


def load_dag(dag_id: str) -> Any:
    """Import a DAG module of the dags folder afresh, so each test gets its own DAG object."""
    folder = str(dags_folder())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules.pop(dag_id, None)
    return importlib.import_module(dag_id).dag


def build_dag(
    dag_id: str, tasks: dict[str, tuple[str, dict[str, Any]]], edges: Iterable[tuple[str, str]] = ()
) -> Any:
    """``write_dag`` and ``load_dag``."""
    write_dag(dag_id, tasks, edges)
    return load_dag(dag_id)


def run_dag(dag: Any, **conf: Any) -> Any:
    return dag.test(run_conf=conf or None)


def ti_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}


def xcom(dag_run: Any, task_id: str, key: str) -> Any:
    (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id]
    return ti.xcom_pull(task_ids=task_id, key=key)


def polls_by(stats: dict[str, Any], transport: str) -> int:
    """Progress requests made by our ``requests`` (worker) or ``aiohttp`` (triggerer) transport."""
    return sum(
        count
        for key, count in stats["user_agents"].items()
        if key.startswith("progress ") and key.endswith(f" {transport}")
    )


class RecordingTaskInstance:
    """Just enough of a task instance for ``execute_complete``: try 1, and it records XCom pushes."""

    try_number = 1

    def __init__(self) -> None:
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value
