"""Secret scan at the Airflow level: DAGs with the operator and the sensor (deferrable and poke, success,
failure and rejected credentials) run with ``dag.test()`` against an emulator that accepts only distinctive
credentials. None of the secrets may appear in captured output and log records, Airflow's log files, the
metadata database (XCom, rendered template fields, trigger kwargs, task instances: every table, and the
SQLite file's raw bytes), exception messages, or the reprs of hook, trigger, operator, sensor and settings.

The secrets: IAM password, SK, temporary SK and its security token, a static X-Auth-Token, every IAM token the
emulator issued during the scan, and the wrong password / SK / security token / token of the failure paths.
(Client-level reprs and logs are covered in depth by ``tests/transport/test_client_secrets.py``.)
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import airflow_support
import pytest
import reliability_helpers as rh

from airflow_provider_codecheck import testing
from airflow_provider_codecheck.core.errors import CodeCheckError
from airflow_provider_codecheck.emulator.defaults import AccessKey
from airflow_provider_codecheck.emulator.server import EmulatorServer
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator
from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor
from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger

# "RELCANARY" marks every secret of this module (the client suite uses other markers).
USER, DOMAIN = "rel-secret-user", "rel-secret-domain"
PASSWORD = "pw-Qx7RELCANARY-iam-password-9931"
AK, SK = "RELSECRETAK000000001", "sk-Vb2RELCANARY-secret-key-000000000000"
TEMP_AK, TEMP_SK = "RELSECRETTEMPAK00002", "sk-Tt4RELCANARY-temp-secret-00000000000"
SECURITY_TOKEN = "st-Hh8RELCANARY-security-token-5151"
WRONG = {
    "password": "pw-RELCANARY-wrong-password",
    "sk": "sk-RELCANARY-wrong-secret-key-0000000000",
    "security_token": "st-RELCANARY-wrong-security-token",
    "token": "MIIRELCANARYwrongstatictoken",
}
MARKER = "RELCANARY"
LOGGERS = ("", "airflow", "airflow.task", "airflow_provider_codecheck", "aiohttp", "urllib3", "asyncio")


@pytest.fixture(scope="module")
def relcanary_emulator() -> Iterator[EmulatorServer]:
    """An emulator that accepts only this module's RELCANARY credentials."""
    server = EmulatorServer(
        "127.0.0.1",
        0,
        iam_user=USER,
        iam_password=PASSWORD,
        iam_domain=DOMAIN,
        access_keys={AK: AccessKey(SK), TEMP_AK: AccessKey(TEMP_SK, security_token=SECURITY_TOKEN)},
    )
    with server:
        yield server


def _connections(static_token: str) -> dict[str, dict[str, Any]]:
    """Connection id -> ``testing.connection`` arguments: good and bad credentials of every auth type."""
    password = {"auth_type": "password", "login": USER, "domain_name": DOMAIN}
    aksk = {"auth_type": "aksk", "login": AK}
    sts = {"auth_type": "aksk", "login": TEMP_AK, "password": TEMP_SK}
    return {
        "sec_password": {**password, "password": PASSWORD},
        "sec_aksk": {**aksk, "password": SK},
        "sec_sts": {**sts, "security_token": SECURITY_TOKEN},
        "sec_token": {"auth_type": "token", "token": static_token},
        "sec_bad_password": {**password, "password": WRONG["password"]},
        "sec_bad_sk": {**aksk, "password": WRONG["sk"]},
        "sec_bad_sts": {**sts, "security_token": WRONG["security_token"]},
        "sec_bad_token": {"auth_type": "token", "token": WRONG["token"]},
    }


@pytest.fixture
def secrets_env(relcanary_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    relcanary_emulator.reset()
    static_token = relcanary_emulator.issue_token()
    connections = _connections(static_token)
    for conn_id, fields in connections.items():
        monkeypatch.setenv(
            *testing.connection_env(conn_id, relcanary_emulator.base_url, timeout=10, **fields)
        )
    return {"emu": relcanary_emulator, "static_token": static_token, "connections": connections}


def _secrets(env: dict[str, Any]) -> list[str]:
    """Every secret value, including each token the emulator issued so far (IAM or static)."""
    issued = env["emu"].call(lambda service: list(service.tokens._expiry))
    return [PASSWORD, SK, TEMP_SK, SECURITY_TOKEN, env["static_token"], *WRONG.values(), *issued]


def _leaks(text: str, secrets: list[str], where: str) -> list[str]:
    found = [f"{where}: {secret[:8]}..." for secret in secrets if secret in text]
    if MARKER in text and not found:
        found.append(f"{where}: part of a secret ({MARKER})")
    return found


def _exception_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)) + repr(error.args)


# --- without a DAG: reprs, serialized kwargs, exception messages (fast) ------------------------------


def test_reprs_kwargs_and_errors_hold_no_secret(secrets_env, caplog):
    caplog.set_level(logging.DEBUG)
    emulator = secrets_env["emu"]
    emulator.add_task(task_id="sec-repr", duration_s=0.3, final_status=2, running=True)
    texts: dict[str, str] = {}
    for conn_id in secrets_env["connections"]:
        hook = CodeCheckHook(conn_id)
        settings = hook.get_settings()
        trigger = CodeCheckTaskTrigger("sec-repr", conn_id, poll_interval=0.1, deadline=time.time() + 30)
        texts[f"{conn_id} reprs"] = " ".join(
            [repr(hook), repr(settings), repr(settings.auth), str(settings), repr(hook.client), repr(trigger)]
        )
        texts[f"{conn_id} trigger kwargs"] = json.dumps(trigger.serialize())
        operator = CodeCheckRunTaskOperator(
            task_id="op", codecheck_task_id="sec-repr", codecheck_conn_id=conn_id
        )
        sensor = CodeCheckTaskSensor(task_id="sn", codecheck_task_id="sec-repr", codecheck_conn_id=conn_id)
        texts[f"{conn_id} operator/sensor reprs"] = f"{operator!r} {sensor!r}"
        try:
            event = hook.wait_for_scan("sec-repr", 0.1, timeout=30)
            texts[f"{conn_id} event"] = json.dumps(event)
        except CodeCheckError as error:
            texts[f"{conn_id} exception"] = _exception_text(error)
        try:
            hook.run_task("does-not-exist")
        except CodeCheckError as error:
            texts[f"{conn_id} run exception"] = _exception_text(error)
    texts["log records"] = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}" for record in caplog.records
    )
    secrets = _secrets(secrets_env)
    leaks = [leak for where, text in texts.items() for leak in _leaks(text, secrets, where)]
    assert leaks == []
    assert sum("exception" in where for where in texts) >= 8  # the failure paths were exercised


# --- dag.test() of every mode and outcome --------------------------------------------------------------

SCENARIOS: dict[str, tuple[str, str, dict[str, Any], dict[str, Any], str]] = {
    # name: (class, connection, class kwargs, emulator task spec, expected state)
    "op_deferred_ok": ("CodeCheckRunTaskOperator", "sec_password", {"deferrable": True}, {"final_status": 2}, "success"),
    "op_deferred_failed": ("CodeCheckRunTaskOperator", "sec_sts", {"deferrable": True}, {"final_status": 1}, "failed"),
    "op_worker_ok": ("CodeCheckRunTaskOperator", "sec_aksk", {"deferrable": False}, {"final_status": 2}, "success"),
    "op_bad_password": ("CodeCheckRunTaskOperator", "sec_bad_password", {"deferrable": True}, {}, "failed"),
    "op_worker_bad_sk": ("CodeCheckRunTaskOperator", "sec_bad_sk", {"deferrable": False}, {}, "failed"),
    "sn_deferred_ok": ("CodeCheckTaskSensor", "sec_token", {"deferrable": True}, {"final_status": 2, "running": True}, "success"),
    "sn_deferred_stopped": ("CodeCheckTaskSensor", "sec_aksk", {"deferrable": True}, {"final_status": 3, "running": True}, "failed"),
    "sn_poke_ok": ("CodeCheckTaskSensor", "sec_sts", {"mode": "poke"}, {"final_status": 2, "running": True}, "success"),
    "sn_poke_failed": ("CodeCheckTaskSensor", "sec_password", {"mode": "poke"}, {"final_status": 1, "running": True}, "failed"),
    "sn_deferred_bad_token": ("CodeCheckTaskSensor", "sec_bad_token", {"deferrable": True}, {"running": True}, "failed"),
    "sn_deferred_bad_sts": ("CodeCheckTaskSensor", "sec_bad_sts", {"deferrable": True}, {"running": True}, "failed"),
    "sn_poke_bad_password": ("CodeCheckTaskSensor", "sec_bad_password", {"mode": "poke"}, {"running": True}, "failed"),
}  # fmt: skip


def _dump_database() -> str:
    """Every row of every table of the metadata database, as text."""
    from airflow.settings import engine
    from sqlalchemy import inspect, text

    lines = []
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                lines.append(f"{table}: {tuple(row)!r}")
    return "\n".join(lines)


def _airflow_home_files() -> Iterator[tuple[Path, bytes]]:
    for path in Path(os.environ["AIRFLOW_HOME"]).rglob("*"):
        if path.is_file():
            yield path, path.read_bytes()


def _run_dag_in_child(dag_id: str) -> tuple[dict[str, Any], str]:
    """Run the DAG with ``dag.test()`` in a child process at DEBUG level; return its summary and its output."""
    env = {**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"}
    runner = Path(__file__).with_name("reliability_dag_runner.py")
    child = subprocess.run(
        [sys.executable, str(runner), dag_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = child.stdout + child.stderr
    results = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
    assert child.returncode == 0, output[-3000:]
    assert results, output[-3000:]
    return json.loads(results[-1][len("RESULT ") :]), output


@pytest.mark.slow
@pytest.mark.usefixtures("airflow_db")
def test_dag_runs_leave_no_secret_anywhere(secrets_env):
    emulator = secrets_env["emu"]
    tasks = {}
    for name, (cls, conn_id, kwargs, spec, _) in SCENARIOS.items():
        emulator.add_task(task_id=f"sec-{name}", duration_s=0.6, **spec)
        poll = {"poll_interval": rh.POLL} if cls == "CodeCheckRunTaskOperator" else {"poke_interval": rh.POLL}
        common = {"codecheck_task_id": f"sec-{name}", "codecheck_conn_id": conn_id, **poll, **kwargs}
        tasks[name] = (cls, common)
    airflow_support.write_dag("rel_secret_scan", tasks)
    started = time.monotonic()
    summary, output = _run_dag_in_child("rel_secret_scan")
    elapsed = time.monotonic() - started

    # The scenarios did what they claim (else the scan would prove little).
    assert summary["states"] == {name: scenario[4] for name, scenario in SCENARIOS.items()}, output[-3000:]
    assert summary["xcom"]["op_deferred_ok"]["status"] == "success"
    assert summary["xcom"]["sn_deferred_ok"]["status"] == "success"
    # The output holds the task logs, including the failures' messages and tracebacks.
    for expected in ("Started CodeArts task", "APIGW.0301", "CC.00000003", "IAM rejected user", "Traceback"):
        assert expected in output, expected

    secrets = _secrets(secrets_env)
    # Airflow's own in-process test supervisor (dag.test only) logs every MaskSecret request it relays, value
    # included, at DEBUG ("Sending request ... msg=MaskSecret(value=...)", task-sdk supervisor.py). That is
    # Airflow asking to mask the connection's secrets, not this provider: those lines alone are left out.
    lines = output.splitlines()
    relayed = [line for line in lines if "Sending request" in line and "msg=MaskSecret(" in line]
    leaks = _leaks("\n".join(line for line in lines if line not in relayed), secrets, "Airflow output")
    leaks += _leaks(json.dumps(summary["xcom"]), secrets, "XCom")
    database = _dump_database()
    leaks += _leaks(database, secrets, "metadata database")
    files = 0
    for path, content in _airflow_home_files():
        files += 1
        leaks += _leaks(content.decode("latin-1"), secrets, str(path))
    assert leaks == []
    for table in ("xcom", "rendered_task_instance_fields", "task_instance"):
        assert f"\n{table}: " in "\n" + database, table  # the scan had material
    rh.record(
        "secrets/dag",
        scenarios=len(SCENARIOS),
        secrets_checked=len(set(secrets)),
        output_lines=output.count("\n"),
        database_rows=database.count("\n") + 1,
        files_scanned=files,
        leaks=len(leaks),
        airflow_mask_secret_debug_lines=len(relayed),
        seconds=round(elapsed, 1),
    )
