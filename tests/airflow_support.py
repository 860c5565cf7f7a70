"""Helpers for tests that run real Airflow against the emulator."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from dag_files import write_dag


def connection_json(base_url: str, auth_type: str = "password", **extra: object) -> str:
    """An ``AIRFLOW_CONN_*`` value pointing at an emulator with its default credentials."""
    from airflow_provider_codecheck.emulator import defaults

    login, password = {
        "password": (defaults.IAM_USER, defaults.IAM_PASSWORD),
        "aksk": (defaults.ACCESS_KEY, defaults.SECRET_KEY),
    }.get(auth_type, (None, None))
    fields = {"auth_type": auth_type, "domain_name": defaults.IAM_DOMAIN, "iam_endpoint": base_url, **extra}
    if auth_type == "token":
        password = str(fields.pop("token"))
    return json.dumps(
        {
            "conn_type": "huaweicloud_codecheck",
            "host": base_url,
            "login": login,
            "password": password,
            "extra": fields,
        }
    )


def dags_folder() -> Path:
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def load_example(name: str) -> Any:
    """Import a DAG module from the dags folder afresh, so each test gets its own DAG object."""
    path = str(dags_folder())
    if path not in sys.path:
        sys.path.insert(0, path)
    sys.modules.pop(name, None)
    return __import__(name).dag


def build_dag(
    dag_id: str, tasks: dict[str, tuple[str, dict[str, Any]]], edges: list[tuple[str, str]] | None = None
) -> Any:
    """Write a DAG file with the given provider tasks (``dag_files.write_dag``) and load it."""
    write_dag(dag_id, tasks, edges or ())
    return load_example(dag_id)


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
