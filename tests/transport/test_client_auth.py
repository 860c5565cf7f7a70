"""Each auth mode end to end against the emulator: SyncClient, AsyncClient and CodeCheckHook."""

from __future__ import annotations

import json

import client_helpers as h
import pytest

from airflow_provider_codecheck.core.errors import AuthenticationError, TokenExpiredError
from airflow_provider_codecheck.core.iam import TokenCache
from airflow_provider_codecheck.core.models import TaskStatus
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
from airflow_provider_codecheck.testing import CONN_TYPE, conn_env_var, connection_env, route_requests

MODES = ("token", "password", "aksk")


def _exercise_all_operations(transport, settings, cache):
    progress = h.invoke(transport, settings, "get_task_progress", h.TASK, cache=cache)
    assert progress.status is TaskStatus.SUCCESS
    assert progress.ratio == 100
    run = h.invoke(transport, settings, "run_task", h.TASK, cache=cache)
    assert len(run.exec_id) == 32
    running = h.invoke(transport, settings, "get_task_progress", h.TASK, cache=cache)
    assert running.status is TaskStatus.CHECKING
    assert h.invoke(transport, settings, "stop_task", h.TASK, cache=cache) is None
    stopped = h.invoke(transport, settings, "get_task_progress", h.TASK, cache=cache)
    assert stopped.status is TaskStatus.STOPPED
    summary = h.invoke(transport, settings, "get_defects_summary", h.TASK, cache=cache)
    assert summary.counts == {"critical": 1, "major": 2, "minor": 0, "suggestion": 3}
    assert summary.issue_count == 6
    statistic = h.invoke(transport, settings, "get_defects_statistic", h.TASK, cache=cache)
    assert statistic.severity == {"critical": 1, "major": 2, "minor": 0, "suggestion": 3}
    assert statistic.status == {"unresolved": 6, "resolved": 0, "dismissed": 0}
    return run.exec_id


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("mode", MODES)
def test_every_operation_in_every_auth_mode(emulator_with_t1, transport, mode):
    emulator_with_t1.add_task(
        task_id=h.TASK, initial_status=2, duration_s=30, defects={"critical": 1, "major": 2, "suggestion": 3}
    )
    cache = TokenCache()
    exec_id = _exercise_all_operations(transport, h.settings_for(mode, emulator_with_t1), cache)
    stats = emulator_with_t1.stats()
    assert stats["auth_failures"] == 0
    assert stats["runs"] == {h.TASK: 1}
    assert emulator_with_t1.get_task(h.TASK)["last_exec_id"] == exec_id
    # Password auth asks IAM once; the token is then reused from the cache by all six calls.
    assert stats["iam_tokens_issued"] == (1 if mode == "password" else 0)
    assert stats["requests"].get("iam 201", 0) == stats["iam_tokens_issued"]


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_aksk_with_security_token_and_project_id(leakcheck_emulator, transport):
    settings = h.aksk_settings(
        leakcheck_emulator,
        h.TEMP_AK,
        h.TEMP_SK,
        security_token=h.SECURITY_TOKEN,
        iam_project_id=h.IAM_PROJECT_ID,
    )
    seen = []
    observe = seen.append if transport == "sync" else None
    progress = h.invoke(transport, settings, "get_task_progress", h.TASK, observe=observe)
    assert progress.status is TaskStatus.SUCCESS
    assert leakcheck_emulator.stats()["auth_failures"] == 0
    if transport == "sync":
        (response,) = seen
        sent = response.request.headers
        assert sent["X-Security-Token"] == h.SECURITY_TOKEN
        assert sent["X-Project-Id"] == h.IAM_PROJECT_ID
        signed = sent["Authorization"].split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
        assert {"x-security-token", "x-project-id", "x-sdk-date", "host"} <= set(signed)


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_temporary_ak_without_its_security_token_is_rejected(leakcheck_emulator, transport):
    settings = h.aksk_settings(leakcheck_emulator, h.TEMP_AK, h.TEMP_SK)
    with pytest.raises(AuthenticationError) as caught:
        h.invoke(transport, settings, "get_task_progress", h.TASK)
    assert caught.value.error_code == "APIGW.0301"
    assert route_requests(leakcheck_emulator.stats(), "progress") == 1


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize(
    ("mode", "code", "error_class"),
    [
        ("token", "CC.00000003", TokenExpiredError),
        ("password", "401", AuthenticationError),
        ("aksk", "APIGW.0301", AuthenticationError),
    ],
)
def test_bad_credentials_fail_once_with_the_service_code(
    emulator_with_t1, transport, mode, code, error_class
):
    settings = {
        "token": h.token_settings(emulator_with_t1, "MII-not-a-token-the-emulator-issued"),
        "password": h.password_settings(emulator_with_t1, password="wrong-password"),
        "aksk": h.aksk_settings(emulator_with_t1, sk="wrong-secret-key-000000000000000000000000"),
    }[mode]
    with pytest.raises(error_class) as caught:
        h.invoke(transport, settings, "get_task_progress", h.TASK)
    error = caught.value
    assert error.error_code == code
    assert error.status == 401
    assert error.attempts == 1
    assert error.request_id
    assert error.request_id in str(error)
    stats = emulator_with_t1.stats()
    assert stats["requests_total"] == 1, stats["requests"]
    assert stats["iam_tokens_issued"] == 0


# --- the hook ------------------------------------------------------------------------------------------------


def _define_connection(monkeypatch, conn_id, emulator, mode, **overrides):
    if mode == "token":
        overrides.setdefault("password", emulator.issue_token())
    overrides.setdefault("timeout", h.TIMEOUT)
    monkeypatch.setenv(*connection_env(conn_id, emulator.base_url, mode, **overrides))
    return CodeCheckHook(codecheck_conn_id=conn_id, retry_policy=h.FAST)


@pytest.mark.parametrize("mode", MODES)
def test_hook_operations_in_every_auth_mode(emulator_with_t1, monkeypatch, mode):
    emulator_with_t1.add_task(task_id=h.TASK, initial_status=2, duration_s=30, defects={"major": 4})
    hook = _define_connection(monkeypatch, f"cc_hook_{mode}", emulator_with_t1, mode)
    assert hook.get_task_progress(h.TASK).status is TaskStatus.SUCCESS
    exec_id = hook.run_task(h.TASK).exec_id
    assert emulator_with_t1.get_task(h.TASK)["last_exec_id"] == exec_id
    assert hook.get_task_progress(h.TASK).status is TaskStatus.CHECKING
    hook.stop_task(h.TASK)
    assert hook.get_task_progress(h.TASK).status is TaskStatus.STOPPED
    assert hook.get_defects_summary(h.TASK).counts["major"] == 4
    assert hook.get_defects_statistic(h.TASK).status["unresolved"] == 4
    stats = emulator_with_t1.stats()
    assert stats["auth_failures"] == 0
    assert stats["iam_tokens_issued"] == (1 if mode == "password" else 0)


@pytest.mark.parametrize("mode", MODES)
async def test_hook_async_client_in_every_auth_mode(emulator_with_t1, monkeypatch, mode):
    hook = _define_connection(monkeypatch, f"cc_hook_async_{mode}", emulator_with_t1, mode)
    async with hook.async_client() as client:
        assert (await client.get_task_progress(h.TASK)).status is TaskStatus.SUCCESS
        await client.run_task(h.TASK)
        assert (await client.get_task_progress(h.TASK)).status is TaskStatus.CHECKING
        await client.stop_task(h.TASK)
        assert (await client.get_defects_statistic(h.TASK)).severity["critical"] == 0
    assert emulator_with_t1.stats()["auth_failures"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_hook_test_connection_true_for_good_credentials(emulator_with_t1, monkeypatch, mode):
    hook = _define_connection(monkeypatch, f"cc_probe_{mode}", emulator_with_t1, mode)
    ok, message = hook.test_connection()
    assert ok, message
    assert emulator_with_t1.base_url in message
    # The probe only reads; no scan was started anywhere.
    assert emulator_with_t1.stats()["runs"] == {}


@pytest.mark.parametrize(
    ("mode", "override", "expected"),
    [
        ("token", {"password": "MII-unknown-token"}, "CC.00000003"),
        ("password", {"password": "definitely-wrong-pw"}, "username or password is wrong"),
        ("aksk", {"password": "definitely-wrong-sk-000000000000000000000"}, "APIGW.0301"),
    ],
)
def test_hook_test_connection_false_for_bad_credentials(
    emulator_with_t1, monkeypatch, mode, override, expected
):
    hook = _define_connection(monkeypatch, f"cc_badprobe_{mode}", emulator_with_t1, mode, **override)
    ok, message = hook.test_connection()
    assert ok is False
    assert message.startswith("Credentials rejected:")
    assert expected in message
    assert "request id" in message
    assert override["password"] not in message
    # No retry storm against rejected credentials.
    assert emulator_with_t1.stats()["requests_total"] == 1


def test_hook_test_connection_false_for_an_invalid_connection(monkeypatch):
    value = {
        "conn_type": CONN_TYPE,
        "host": "http://127.0.0.1:9",
        "password": "x",
        "extra": {"auth_type": "kerberos"},
    }
    monkeypatch.setenv(conn_env_var("cc_invalid"), json.dumps(value))
    ok, message = CodeCheckHook(codecheck_conn_id="cc_invalid", retry_policy=h.FAST).test_connection()
    assert ok is False
    assert "auth_type" in message
