"""The stack itself: every Airflow component healthy, the example DAGs parsed without import errors, and the
provider's connection type known to the API server (the UI builds the form from ``hook_meta``)."""

from __future__ import annotations

from typing import Any

import pytest
from stack import CONN_TYPE, EXAMPLE_DAGS, AirflowApi, RunningStack


@pytest.mark.parametrize("component", ["metadatabase", "scheduler", "triggerer", "dag_processor"])
def test_component_healthy(airflow_stack: RunningStack, component: str) -> None:
    assert (airflow_stack.health.get(component) or {}).get("status") == "healthy", airflow_stack.health


def test_no_import_errors(airflow_api: AirflowApi, example_dags_parsed: None) -> None:
    errors = airflow_api.get("/importErrors")
    assert errors["total_entries"] == 0, errors


@pytest.mark.parametrize("dag_id", EXAMPLE_DAGS)
def test_example_dag_parsed(airflow_api: AirflowApi, example_dags_parsed: None, dag_id: str) -> None:
    assert airflow_api.get(f"/dags/{dag_id}")["dag_id"] == dag_id


@pytest.fixture(scope="module")
def hook_meta(airflow_api: AirflowApi) -> dict[str, Any]:
    """What ``/ui/connections/hook_meta`` says of our connection type (empty when it is not listed)."""
    metas = airflow_api.http.get("/ui/connections/hook_meta").json()
    return next((meta for meta in metas if meta.get("connection_type") == CONN_TYPE), {})


def test_hook_meta_lists_the_connection_type(hook_meta: dict[str, Any]) -> None:
    assert hook_meta.get("connection_type") == CONN_TYPE


def test_hook_meta_declares_security_token_a_password_field(hook_meta: dict[str, Any]) -> None:
    extra_fields = hook_meta.get("extra_fields") or {}
    assert ((extra_fields.get("security_token") or {}).get("schema") or {}).get("format") == "password"
