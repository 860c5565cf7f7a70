"""B7: bad input fails fast and clearly, in every mode (real Airflow against the emulator)."""

from __future__ import annotations

import asyncio
import datetime
import json

import pytest
from airflow_support import build_dag, ti_states, xcom

from airflow_provider_codecheck.core.errors import ConnectionConfigError
from airflow_provider_codecheck.core.settings import settings_from_connection
from airflow_provider_codecheck.exceptions import CodeCheckConfigurationError
from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator
from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor
from airflow_provider_codecheck.testing import connection_json
from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger

pytestmark = pytest.mark.usefixtures("airflow_db")

OPERATOR = "CodeCheckRunTaskOperator"
SENSOR = "CodeCheckTaskSensor"
SECRET = "s3cr3t-value"
TOKEN_EXTRA = {"auth_type": "token"}


def _tries(dag_run, task_id):
    (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id]
    return ti.try_number


# --- connection fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "login", "password", "extra"),
    [
        ("https://example.com\r\nX-Injected: 1", None, SECRET, TOKEN_EXTRA),  # CR/LF in the host
        ("https://example.com/../v2", None, SECRET, TOKEN_EXTRA),  # dot segments
        ("https://a..example.com", None, SECRET, TOKEN_EXTRA),  # empty host label
        (f"https://user:{SECRET}@example.com", None, SECRET, TOKEN_EXTRA),  # credentials in the host
        ("https://exa mple.com", None, SECRET, TOKEN_EXTRA),  # whitespace
        ("https://example.com\\evil", None, SECRET, TOKEN_EXTRA),  # backslash, rewritten to "/"
        ("https://example.com:99999", None, SECRET, TOKEN_EXTRA),  # invalid port
        ("https://example.com", None, f"{SECRET}\r\n", TOKEN_EXTRA),  # token sent as a header
        ("https://example.com", "AK\n", SECRET, {"auth_type": "aksk"}),  # AK in the Authorization header
        ("https://example.com", "AK", f"{SECRET}\x00", {"auth_type": "aksk"}),  # SK
        ("https://example.com", None, SECRET, {**TOKEN_EXTRA, "security_token": "a\rb"}),
        ("https://example.com", None, SECRET, {**TOKEN_EXTRA, "ca_bundle": "/nonexistent/ca.pem"}),
    ],
)
def test_connection_fields_an_http_stack_would_reject_fail_at_read_time(host, login, password, extra):
    with pytest.raises(ConnectionConfigError) as raised:
        settings_from_connection(host, login, password, extra)
    assert SECRET not in str(raised.value)


def test_host_port_from_the_airflow_connection_is_honoured(default_conn_emulator, monkeypatch):
    from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook

    default_conn_emulator.add_task(task_id="port-task", duration_s=1, final_status=2, running=True)
    conn = json.loads(connection_json(default_conn_emulator.base_url))
    scheme_host, port = default_conn_emulator.base_url.rsplit(":", 1)
    conn["host"], conn["port"] = scheme_host, int(port)
    monkeypatch.setenv("AIRFLOW_CONN_CODECHECK_PORT", json.dumps(conn))
    hook = CodeCheckHook("codecheck_port")
    assert hook.get_settings().endpoint == default_conn_emulator.base_url
    assert hook.get_task_progress("port-task").status.value == "checking"


# --- task ids ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [True, False])
@pytest.mark.parametrize("task_id", ["", "../stop", "a/b"])
def test_invalid_task_id_fails_the_sensor_before_any_wait(default_conn_emulator, deferrable, task_id):
    kwargs = {"codecheck_task_id": task_id, "deferrable": deferrable, "poke_interval": 0.1, "timeout": 30}
    name = f"bad_id_{deferrable}_{abs(hash(task_id))}"
    dag_run = build_dag(
        name, {"wait": (SENSOR, kwargs), "soft": (SENSOR, {**kwargs, "soft_fail": True})}
    ).test()
    assert ti_states(dag_run) == {"wait": "failed", "soft": "failed"}
    assert default_conn_emulator.stats()["requests_total"] == 0


def test_invalid_task_id_fails_the_operator_before_run(default_conn_emulator):
    kwargs = {"codecheck_task_id": "", "retries": 2, "retry_delay": datetime.timedelta(0)}
    dag_run = build_dag("bad_id_operator", {"scan": (OPERATOR, kwargs)}).test()
    assert ti_states(dag_run) == {"scan": "failed"}
    assert _tries(dag_run, "scan") == 1  # not retried
    assert default_conn_emulator.stats()["requests_total"] == 0


@pytest.mark.parametrize("task_id", ["", "a/../b", None])
def test_trigger_turns_an_invalid_task_id_into_an_error_event(task_id):
    trigger = CodeCheckTaskTrigger(task_id, poll_interval=0.1)  # type: ignore[arg-type]

    async def first_event():
        events = [event.payload async for event in trigger.run()]
        return events

    (event,) = asyncio.run(first_event())
    assert event["status"] == "error"
    assert "task id" in event["message"]


# --- quality gate -----------------------------------------------------------------------------------------


def test_invalid_quality_gate_fails_without_retry_and_without_a_scan(default_conn_emulator):
    default_conn_emulator.add_task(task_id="gate-bad", duration_s=0.2, final_status=2, running=False)
    kwargs = {
        "codecheck_task_id": "gate-bad",
        "quality_gate": {"blocker": 0},
        "retries": 2,
        "retry_delay": datetime.timedelta(0),
    }
    dag_run = build_dag("gate_invalid", {"scan": (OPERATOR, kwargs)}).test()
    assert ti_states(dag_run) == {"scan": "failed"}
    assert _tries(dag_run, "scan") == 1
    assert default_conn_emulator.stats()["runs"] == {}


def test_quality_gate_as_a_json_string_works_without_native_rendering(default_conn_emulator):
    default_conn_emulator.add_task(
        task_id="gate-json", duration_s=0.2, final_status=2, running=False, defects={"critical": 1}
    )
    common = {"codecheck_task_id": "gate-json", "deferrable": False, "poll_interval": 0.1}
    tasks = {
        # What a template such as "{{ params.gate | tojson }}" renders to without render_template_as_native_obj.
        "loose": (OPERATOR, {**common, "quality_gate": '{"critical": 5}'}),
        "strict": (OPERATOR, {**common, "quality_gate": '{"critical": 0}'}),
    }
    dag_run = build_dag("gate_json", tasks, [("loose", "strict")]).test()
    assert ti_states(dag_run) == {"loose": "success", "strict": "failed"}
    assert xcom(dag_run, "strict", "status") == "success"  # the verdict, pushed before the gate failed


# --- durations and defaults -------------------------------------------------------------------------------


def test_poll_interval_and_wait_timeout_accept_numbers_and_timedelta():
    operator = CodeCheckRunTaskOperator(
        task_id="t",
        codecheck_task_id="x",
        poll_interval=datetime.timedelta(seconds=15),
        wait_timeout=datetime.timedelta(hours=2),
    )
    assert (operator.poll_interval, operator.wait_timeout) == (15.0, 7200.0)
    assert CodeCheckRunTaskOperator(task_id="u", codecheck_task_id="x", poll_interval=2).poll_interval == 2.0


@pytest.mark.parametrize("name", ["poll_interval", "wait_timeout"])
@pytest.mark.parametrize("value", ["30", None, True, 0, -1, datetime.timedelta(0), float("nan")])
def test_bad_durations_name_the_parameter(name, value):
    with pytest.raises(CodeCheckConfigurationError, match=name):
        CodeCheckRunTaskOperator(task_id="t", codecheck_task_id="x", **{name: value})


def test_defaults_follow_the_twelve_hour_limit_of_a_check():
    assert CodeCheckRunTaskOperator(task_id="t", codecheck_task_id="x").wait_timeout == 12 * 3600
    assert CodeCheckTaskSensor(task_id="s", codecheck_task_id="x").timeout == 12 * 3600
    assert CodeCheckTaskSensor(task_id="s2", codecheck_task_id="x", timeout=5).timeout == 5


# --- soft_fail --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [True, False])
def test_soft_fail_does_not_hide_a_permanent_error_in_any_mode(default_conn_emulator, deferrable):
    default_conn_emulator.add_task(
        task_id="denied",
        duration_s=1,
        final_status=2,
        running=True,
        faults=[{"kind": "forbidden_403", "count": 100, "routes": ["progress"]}],
    )
    kwargs = {
        "codecheck_task_id": "denied",
        "deferrable": deferrable,
        "poke_interval": 0.1,
        "timeout": 30,
        "soft_fail": True,
    }
    dag_run = build_dag(f"soft_fail_permanent_{deferrable}", {"wait": (SENSOR, kwargs)}).test()
    assert ti_states(dag_run) == {"wait": "failed"}
