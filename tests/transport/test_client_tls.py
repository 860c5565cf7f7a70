"""TLS against the emulator's private CA: refused by default with a hint, accepted with ``ca_bundle``."""

from __future__ import annotations

import certifi
import client_helpers as h
import pytest

from airflow_provider_codecheck.core.errors import TlsVerificationError
from airflow_provider_codecheck.core.iam import TokenCache
from airflow_provider_codecheck.core.models import TaskStatus
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
from airflow_provider_codecheck.testing import connection_env


@pytest.fixture
def tls_emu(codecheck_emulator_tls):
    codecheck_emulator_tls.reset()
    codecheck_emulator_tls.add_task(task_id=h.TASK, initial_status=2)
    assert codecheck_emulator_tls.base_url.startswith("https://")
    return codecheck_emulator_tls


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("mode", ["token", "password", "aksk"])
def test_default_verification_rejects_the_private_ca(tls_emu, transport, mode):
    with pytest.raises(TlsVerificationError) as caught:
        h.invoke(transport, h.settings_for(mode, tls_emu), "get_task_progress", h.TASK)
    error = caught.value
    assert "ca_bundle" in str(error)
    assert error.attempts == 1, "a certificate problem is not retried"
    assert not error.retryable
    stats = tls_emu.stats()
    assert stats["requests_total"] == 0
    assert stats["iam_tokens_issued"] == 0


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("mode", ["token", "password", "aksk"])
def test_ca_bundle_makes_it_work(tls_emu, monkeypatch, transport, mode):
    # A machine-wide bundle (common in images) must not override the connection's own CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    settings = h.settings_for(mode, tls_emu, ca_bundle=tls_emu.ca_file)
    assert settings.verify == tls_emu.ca_file
    cache = TokenCache()
    assert (
        h.invoke(transport, settings, "get_task_progress", h.TASK, cache=cache).status is TaskStatus.SUCCESS
    )
    assert h.invoke(transport, settings, "run_task", h.TASK, cache=cache).exec_id
    stats = tls_emu.stats()
    assert stats["runs"] == {h.TASK: 1}
    assert stats["iam_tokens_issued"] == (1 if mode == "password" else 0)
    assert stats["tls_handshakes"] >= 1


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_verify_false_skips_verification(tls_emu, monkeypatch, transport):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    settings = h.settings_for("aksk", tls_emu, verify=False)
    assert h.invoke(transport, settings, "get_defects_statistic", h.TASK).severity["major"] == 0


def test_hook_test_connection_explains_tls_failure(tls_emu, monkeypatch):
    token = tls_emu.issue_token()
    monkeypatch.setenv(*connection_env("cc_tls", tls_emu.base_url, "token", token=token, timeout=h.TIMEOUT))
    ok, message = CodeCheckHook(codecheck_conn_id="cc_tls", retry_policy=h.FAST).test_connection()
    assert not ok
    assert "ca_bundle" in message
    ok_conn = connection_env(
        "cc_tls_ok", tls_emu.base_url, "token", token=token, ca_file=tls_emu.ca_file, timeout=h.TIMEOUT
    )
    monkeypatch.setenv(*ok_conn)
    ok, message = CodeCheckHook(codecheck_conn_id="cc_tls_ok", retry_policy=h.FAST).test_connection()
    assert ok, message
