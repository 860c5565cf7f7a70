"""The public test-support module (airflow_provider_codecheck.testing) and the opt-in pytest plugin, as a DAG
author uses them: a spawned emulator, its admin client, connections of every auth mode, the fault catalogue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_codecheck import testing
from airflow_provider_codecheck.core.models import TaskStatus
from airflow_provider_codecheck.emulator import faults
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook, settings_from_airflow_connection

ROOT = Path(__file__).resolve().parents[2]
MODES = ("password", "aksk", "token")


def test_importing_it_loads_neither_pytest_nor_aiohttp_nor_airflow():
    code = (
        "import sys, airflow_provider_codecheck.testing as t; "
        "print(sorted(m for m in ('pytest', 'aiohttp', 'airflow', 'requests') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_the_pytest_plugin_is_opt_in():
    # No pytest11 entry point: installing the provider must not load fixtures into every pytest run.
    assert "pytest11" not in (ROOT / "pyproject.toml").read_text()


def test_spawned_emulator_over_tls_with_its_admin_client():
    with testing.spawn_emulator(tls=True, args=("--seed", "7")) as emulator:
        assert emulator.base_url.startswith("https://127.0.0.1:")
        assert emulator.ca_file
        assert Path(emulator.ca_file).is_file()
        admin = emulator.admin
        assert admin.health()
        task = admin.add_task(task_id="t1", duration_s=30, running=True)
        assert task["task_id"] == "t1"
        assert admin.get_task("t1")["task_id"] == "t1"
        assert admin.get_task("no-such-task") is None
        admin.add_task(task_id="t2", initial_status=2)
        exec_id = admin.commit("t2", duration_s=1)
        assert admin.get_task("t2")["last_exec_id"] == exec_id
        with pytest.raises(testing.EmulatorAdminError) as refused:
            admin.set_faults([{"kind": "no-such-kind", "count": 1}])
        assert refused.value.status == 400
        assert "no-such-kind" in str(refused.value)
        hook_env = dict([testing.connection_env("spawned", emulator.base_url, ca_file=emulator.ca_file)])
        settings = testing.connection_settings(emulator.base_url, ca_file=emulator.ca_file)
        assert settings.verify == emulator.ca_file
        assert json.loads(hook_env["AIRFLOW_CONN_SPAWNED"])["extra"]["ca_bundle"] == emulator.ca_file
    assert emulator.process.returncode == 0


def test_admin_client_drives_every_admin_route(emulator):
    admin = testing.EmulatorAdmin(emulator.base_url)
    admin.add_task(task_id="t1", initial_status=2)
    admin.set_faults([testing.fault("http_503", count=1, routes=["progress"])], seed=3)
    token = admin.issue_token(lifetime_s=60)
    settings = testing.connection_settings(emulator.base_url, "token", token=token)
    hook_settings = testing.connection_settings(emulator.base_url, "aksk")
    assert settings.auth.token == token
    assert hook_settings.auth.access_key == testing.ACCESS_KEY
    assert admin.revoke_tokens([token], code="APIG.0307") == 1
    assert admin.set_quota(rate=50, burst=5)["rate"] == 50.0
    admin.set_shape("absent")
    admin.expire_tokens()
    stats = admin.stats()
    assert stats["requests_total"] == 0  # the admin API is not counted as traffic
    assert testing.route_requests(stats, "progress") == 0
    admin.reset()
    assert admin.get_task("t1") is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("form", ["json", "uri"])
def test_connections_of_every_auth_mode_reach_the_emulator(emulator, monkeypatch, mode, form):
    emulator.add_task(task_id="t1", initial_status=2)
    token = {"token": emulator.issue_token()} if mode == "token" else {}
    name, value = testing.connection_env("cc_testing", emulator.base_url, mode, uri=form == "uri", **token)
    assert name == "AIRFLOW_CONN_CC_TESTING"
    assert value.startswith("huaweicloud-codecheck://" if form == "uri" else "{")
    monkeypatch.setenv(name, value)
    hook = CodeCheckHook(codecheck_conn_id="cc_testing")
    assert hook.get_task_progress("t1").status is TaskStatus.SUCCESS
    assert testing.route_requests(emulator.stats(), "progress", 200) == 1
    # Airflow reads the connection into the same settings testing.connection_settings gives.
    expected = testing.connection_settings(emulator.base_url, mode, **token)
    assert settings_from_airflow_connection(hook.get_connection("cc_testing")) == expected


def test_connection_fields_and_overrides():
    fields = testing.connection("http://127.0.0.1:1", "password", login="me", timeout=5, region=None)
    assert fields == {
        "conn_type": "huaweicloud_codecheck",
        "host": "http://127.0.0.1:1",
        "login": "me",
        "password": testing.IAM_PASSWORD,
        "extra": {
            "auth_type": "password",
            "iam_endpoint": "http://127.0.0.1:1",
            "domain_name": testing.IAM_DOMAIN,
            "timeout": 5,
        },
    }
    with pytest.raises(ValueError, match="token"):
        testing.connection("http://127.0.0.1:1", "token")
    with pytest.raises(ValueError, match="auth_type"):
        testing.connection("http://127.0.0.1:1", "kerberos")  # type: ignore[arg-type]
    # Extras that are not all scalars travel as one __extra__ JSON parameter, as Airflow writes them.
    uri = testing.connection_uri("http://127.0.0.1:1", "aksk", tags=["a"])
    assert "__extra__=" in uri


def test_the_fault_catalogue_names_every_kind_once():
    groups = [
        set(testing.RETRIED_FAULTS),
        set(testing.TOKEN_FAULTS),
        set(testing.PERMANENT_FAULTS),
        set(testing.AFTER_FAULTS),
        set(testing.OTHER_FAULTS),
    ]
    assert sum(len(group) for group in groups) == len(faults.KINDS)
    assert set().union(*groups) == testing.ALL_FAULTS == faults.KINDS
    assert set(testing.PERMANENT_FAULTS) == faults.PERMANENT_KINDS


def test_fault_specs_are_accepted_by_the_emulator(emulator):
    specs = [testing.fault(kind, probability=0.1) for kind in sorted(testing.ALL_FAULTS)]
    emulator.set_faults(specs)  # raises FaultSpecError on an invalid spec
    with pytest.raises(ValueError, match="unknown fault kind"):
        testing.fault("http_999", count=1)
    with pytest.raises(ValueError, match="exactly one"):
        testing.fault("http_503", count=1, probability=0.5)


def test_codecheck_connection_fixture_points_a_connection_at_the_emulator(
    codecheck_emulator_clean, codecheck_connection
):
    codecheck_emulator_clean.add_task(task_id="t1", initial_status=1)
    assert codecheck_connection("token") == "codecheck_default"
    assert codecheck_connection("aksk", conn_id="cc_other", timeout=5) == "cc_other"
    assert CodeCheckHook().get_task_progress("t1").status is TaskStatus.FAILED
    assert CodeCheckHook(codecheck_conn_id="cc_other").get_task_progress("t1").status is TaskStatus.FAILED
