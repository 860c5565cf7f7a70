"""Airflow discovers the provider, its connection type and its connection form fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from airflow_provider_codecheck.connection_form import CONN_FIELDS

PACKAGE = "airflow-provider-codecheck"


def test_providers_manager_knows_the_provider_and_connection_type():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert PACKAGE in manager.providers
    hook = manager.hooks["huaweicloud_codecheck"]
    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_codecheck.hooks.codecheck.CodeCheckHook"
    assert hook.connection_id_attribute_name == "codecheck_conn_id"


def test_connection_form_fields_and_behaviour_are_registered():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    for name in CONN_FIELDS:
        assert f"extra__huaweicloud_codecheck__{name}" in widgets, name
    assert widgets["extra__huaweicloud_codecheck__security_token"].is_sensitive
    behaviour = manager.field_behaviours["huaweicloud_codecheck"]
    assert behaviour["hidden_fields"] == ["port", "schema"]
    assert behaviour["relabeling"]["host"] == "Endpoint URL"


def test_airflow_cli_lists_the_provider():
    env = {**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    providers = json.loads(out[out.index("[") :])
    ours = [p for p in providers if p["package_name"] == PACKAGE]
    assert len(ours) == 1
    from airflow_provider_codecheck import __version__

    assert ours[0]["version"] == __version__
