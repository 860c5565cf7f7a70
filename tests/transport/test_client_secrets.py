"""Secrets (password, SK, tokens, security token, proxy password) never show in reprs, logs or errors."""

from __future__ import annotations

import logging
import time
import traceback
from datetime import UTC, datetime

import client_helpers as h
import pytest

from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.core.errors import CodeCheckError, ConnectionConfigError
from airflow_provider_codecheck.core.http import ApiCall, build_request
from airflow_provider_codecheck.core.iam import TokenCache
from airflow_provider_codecheck.core.models import IamToken
from airflow_provider_codecheck.core.operations import get_task_progress, run_task
from airflow_provider_codecheck.core.settings import settings_from_connection
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
from airflow_provider_codecheck.testing import connection_env
from airflow_provider_codecheck.transport.aio import AsyncClient
from airflow_provider_codecheck.transport.sync import SyncClient

WRONG_PASSWORD = "pw-Wr0ngLEAKCANARY-password-9999"
WRONG_SK = "sk-Wr0ngLEAKCANARY-secretkey-0000000000000"
WRONG_TOKEN = "MII-Wr0ngLEAKCANARY-token"
PROXY_PASSWORD = "px-LEAKCANARY-proxypass"
STATIC_SECRETS = [
    h.SECRET_PASSWORD,
    h.SECRET_SK,
    h.TEMP_SK,
    h.SECURITY_TOKEN,
    WRONG_PASSWORD,
    WRONG_SK,
    WRONG_TOKEN,
    PROXY_PASSWORD,
]
LOGGERS = ("", "urllib3", "requests", "aiohttp", "asyncio", "airflow", "airflow_provider_codecheck")


def _good_settings(mode, emulator_with_t1):
    if mode == "token":
        return h.token_settings(emulator_with_t1, emulator_with_t1.issue_token())
    if mode == "password":
        return h.password_settings(emulator_with_t1, h.SECRET_USER, h.SECRET_PASSWORD, h.SECRET_DOMAIN)
    if mode == "aksk":
        return h.aksk_settings(emulator_with_t1, h.SECRET_AK, h.SECRET_SK)
    return h.aksk_settings(emulator_with_t1, h.TEMP_AK, h.TEMP_SK, security_token=h.SECURITY_TOKEN)


def _bad_settings(mode, emulator_with_t1):
    if mode == "token":
        return h.token_settings(emulator_with_t1, WRONG_TOKEN)
    if mode == "password":
        return h.password_settings(emulator_with_t1, h.SECRET_USER, WRONG_PASSWORD, h.SECRET_DOMAIN)
    if mode == "aksk":
        return h.aksk_settings(emulator_with_t1, h.SECRET_AK, WRONG_SK)
    return h.aksk_settings(emulator_with_t1, h.TEMP_AK, WRONG_SK, security_token=h.SECURITY_TOKEN)


MODES = ("token", "password", "aksk", "aksk_sts")


def _secrets_of(settings, cache) -> list[str]:
    """The static canaries plus this connection's live token(s)."""
    found = list(STATIC_SECRETS)
    auth = settings.auth
    if hasattr(auth, "token"):
        found.append(auth.token)
    if hasattr(auth, "password"):
        cached = cache.fresh(iam.cache_key(auth, settings.iam_endpoint), time.time())
        if cached is not None:
            found.append(cached.token)
    return found


def _assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"secret {secret[:6]}... leaked"


@pytest.fixture
def debug_logs(caplog):
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    return caplog


def _everything_logged(caplog, capfd) -> str:
    out, err = capfd.readouterr()
    messages = [record.getMessage() for record in caplog.records]
    return "\n".join([caplog.text, *messages, out, err])


def _prove_capture_sees_leaks(caplog, secret: str) -> None:
    # Guard against a log filter (e.g. Airflow's secrets masker) hiding leaks from this test.
    logging.getLogger("urllib3.connectionpool").debug("control %s", secret)
    assert any(secret in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("mode", MODES)
def test_no_secret_in_logs_of_successful_and_failing_calls(
    leakcheck_emulator, debug_logs, capfd, transport, mode
):
    good = _good_settings(mode, leakcheck_emulator)
    cache = TokenCache()
    for method in ("get_task_progress", "run_task", "stop_task", "get_defects_summary"):
        h.invoke(transport, good, method, h.TASK, cache=cache)
    # The live token now: a token rejected below is dropped from the cache, yet must not leak either.
    earlier = _secrets_of(good, cache)
    leakcheck_emulator.set_faults(
        [
            {"kind": "http_503", "count": 1, "routes": ["progress"]},
            {"kind": "reset", "count": 1, "routes": ["progress"]},
            {"kind": "malformed_json", "count": 1, "routes": ["progress"]},
            {"kind": "token_expired", "count": 1, "routes": ["progress"]},
        ]
    )
    try:
        h.invoke(transport, good, "get_task_progress", h.TASK, cache=cache)
    except CodeCheckError as error:  # token_expired is final for static tokens and AK/SK
        _assert_clean(str(error) + repr(error), _secrets_of(good, cache))
    bad = _bad_settings(mode, leakcheck_emulator)
    with pytest.raises(CodeCheckError) as caught:
        h.invoke(transport, bad, "get_task_progress", h.TASK, cache=cache)
    secrets = list(dict.fromkeys(earlier + _secrets_of(good, cache)))
    live_tokens = [s for s in secrets if s not in STATIC_SECRETS]
    assert bool(live_tokens) == (mode in ("token", "password"))
    error_text = str(caught.value) + repr(caught.value) + "".join(traceback.format_exception(caught.value))
    _assert_clean(error_text, secrets)
    logged = _everything_logged(debug_logs, capfd)
    assert logged.strip(), "the DEBUG capture saw nothing at all"
    _assert_clean(logged, secrets)
    _prove_capture_sees_leaks(debug_logs, secrets[0])


def test_no_secret_in_hook_logs_messages_and_reprs(leakcheck_emulator, debug_logs, capfd, monkeypatch):
    url = leakcheck_emulator.base_url
    good = {"login": h.SECRET_USER, "domain_name": h.SECRET_DOMAIN, "timeout": h.TIMEOUT}
    sts = {
        "login": h.TEMP_AK,
        "password": h.TEMP_SK,
        "security_token": h.SECURITY_TOKEN,
        "timeout": h.TIMEOUT,
    }
    monkeypatch.setenv(*connection_env("cc_secret_good", url, "password", password=h.SECRET_PASSWORD, **good))
    monkeypatch.setenv(*connection_env("cc_secret_bad", url, "password", password=WRONG_PASSWORD, **good))
    monkeypatch.setenv(*connection_env("cc_secret_sts", url, "aksk", **sts))
    hook = CodeCheckHook(codecheck_conn_id="cc_secret_good", retry_policy=h.FAST)
    sts_hook = CodeCheckHook(codecheck_conn_id="cc_secret_sts", retry_policy=h.FAST)
    bad_hook = CodeCheckHook(codecheck_conn_id="cc_secret_bad", retry_policy=h.FAST)
    assert hook.test_connection()[0]
    assert sts_hook.test_connection()[0]
    hook.run_task(h.TASK)
    sts_hook.get_defects_statistic(h.TASK)
    event = hook.wait_for_scan(h.TASK, poll_interval=0.01, timeout=0.05)
    assert event["status"] == "timeout"
    ok, message = bad_hook.test_connection()
    assert not ok
    with pytest.raises(CodeCheckError) as caught:
        bad_hook.get_task_progress(h.TASK)
    settings = hook.get_settings()
    secrets = _secrets_of(settings, iam.TOKEN_CACHE)
    assert [s for s in secrets if s not in STATIC_SECRETS], "the IAM token is among the secrets checked"
    texts = [
        message,
        str(caught.value),
        repr(caught.value),
        "".join(traceback.format_exception(caught.value)),
        repr(hook),
        str(hook),
        repr(hook.client),
        repr(sts_hook.client),
        repr(hook.get_settings()),
        repr(sts_hook.get_settings()),
        _everything_logged(debug_logs, capfd),
    ]
    for text in texts:
        _assert_clean(text, secrets)
    _prove_capture_sees_leaks(debug_logs, h.SECRET_SK)


def _all_settings(emulator_with_t1):
    yield _good_settings("token", emulator_with_t1)
    yield _good_settings("password", emulator_with_t1)
    yield _good_settings("aksk", emulator_with_t1)
    yield _good_settings("aksk_sts", emulator_with_t1)
    yield settings_from_connection(
        emulator_with_t1.base_url,
        h.SECRET_AK,
        h.SECRET_SK,
        {"auth_type": "aksk", "proxy": f"http://alice:{PROXY_PASSWORD}@proxy.example:3128"},
    )


async def test_reprs_hold_no_secret(leakcheck_emulator):
    token = leakcheck_emulator.issue_token()
    secrets = [*STATIC_SECRETS, token, "MII-iam-token-LEAKCANARY"]
    now = datetime(2026, 11, 28, tzinfo=UTC)
    for settings in _all_settings(leakcheck_emulator):
        if hasattr(settings.auth, "token"):
            settings = h.token_settings(leakcheck_emulator, token)
        sync_client = SyncClient(settings, h.FAST)
        request = build_request(
            get_task_progress(h.TASK).call, settings.endpoint, settings, "MII-iam-token-LEAKCANARY", now
        )
        iam_request = None
        if hasattr(settings.auth, "password"):
            iam_request = build_request(
                iam.token_call(settings.auth), settings.iam_endpoint, settings, None, now
            )
        async with AsyncClient(settings, h.FAST) as async_client:
            texts = [
                repr(settings),
                str(settings),
                repr(settings.auth),
                repr(sync_client),
                repr(async_client),
                repr(request),
                str(request),
                repr(iam_request),
                repr(ApiCall("POST", "/v3/auth/tokens", body={"password": h.SECRET_PASSWORD})),
                repr(iam.token_call(settings.auth)) if iam_request else "",
                repr(run_task(h.TASK, {"git_url": "https://x", "access_token": h.SECURITY_TOKEN})),
                repr(IamToken("MII-iam-token-LEAKCANARY", 1.0, 0.0)),
                repr(TokenCache()),
            ]
        sync_client.close()
        for text in texts:
            _assert_clean(text, secrets)


@pytest.mark.parametrize(
    "proxy",
    [
        f"ftp://alice:{PROXY_PASSWORD}@proxy.example:3128",
        f"http://alice:{PROXY_PASSWORD}@proxy.example:3128/path",
    ],
)
def test_invalid_proxy_error_does_not_echo_its_password(proxy):
    with pytest.raises(ConnectionConfigError) as caught:
        settings_from_connection("http://127.0.0.1:1", "ak", "sk", {"auth_type": "aksk", "proxy": proxy})
    assert "proxy" in str(caught.value)
    assert PROXY_PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("login", "password", "extra"),
    [
        (None, h.SECRET_PASSWORD, {"auth_type": "password", "domain_name": ""}),
        ("ak", h.SECRET_SK, {"auth_type": "aksk", "timeout": "soon"}),
        ("ak", h.SECRET_SK, {"auth_type": "aksk", "verify": "perhaps"}),
        ("ak", h.SECRET_SK, {"auth_type": "aksk", "region": "Mars"}),
        (None, h.SECRET_PASSWORD, {"auth_type": "nope"}),
        (None, h.SECRET_PASSWORD, {"auth_type": "token", "iam_endpoint": "ftp://x"}),
    ],
)
def test_config_errors_do_not_echo_secrets(login, password, extra):
    with pytest.raises(ConnectionConfigError) as caught:
        settings_from_connection("http://127.0.0.1:1", login, password, extra)
    _assert_clean(str(caught.value), STATIC_SECRETS)
