"""TLS: verification is on by default. Against the HTTPS emulator (private CA) a wait ends at once with an
error that says TLS verification failed and names ``ca_bundle``; with ``ca_bundle`` set, the same wait succeeds.
Trigger (aiohttp) and sync hook (requests) alike, with IAM-password and AK/SK auth.
"""

from __future__ import annotations

import time

import pytest
import reliability_helpers as rh

from airflow_provider_codecheck import testing
from airflow_provider_codecheck.core.settings import settings_from_connection
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook

TLS_CONN_ID = "codecheck_rel_tls"
AUTH_TYPES = ("password", "aksk")


@pytest.fixture
def tls_emu(codecheck_emulator_tls):
    codecheck_emulator_tls.reset()
    codecheck_emulator_tls.add_task(task_id="tls-scan", duration_s=0.6, final_status=2, running=True)
    return codecheck_emulator_tls


@pytest.fixture
def tls_connection(tls_emu, monkeypatch):
    def configure(auth_type: str, **extra) -> str:
        value = testing.connection_json(tls_emu.base_url, auth_type, timeout=10, **extra)
        monkeypatch.setenv(testing.conn_env_var(TLS_CONN_ID), value)
        return TLS_CONN_ID

    return configure


def _assert_tls_error(event: dict, emulator) -> None:
    assert event["status"] == "error", event
    message = event["message"]
    assert "TLS verification" in message, message
    assert "failed" in message, message
    assert "ca_bundle" in message, message
    stats = emulator.stats()
    assert stats["requests_total"] == 0  # no handshake completed, so nothing was sent, and nothing retried
    assert stats["tls_handshakes"] == 0


def test_verification_is_on_by_default():
    settings = settings_from_connection("https://codecheck.example", None, "t", {"auth_type": "token"})
    assert settings.verify is True


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
async def test_trigger_reports_failed_tls_verification_and_names_ca_bundle(
    tls_emu, tls_connection, auth_type
):
    conn_id = tls_connection(auth_type)
    started = time.monotonic()
    (events,) = await rh.run_triggers([rh.make_trigger("tls-scan", conn_id)], timeout=30)
    assert time.monotonic() - started < 5  # not retried until some deadline
    assert len(events) == 1
    _assert_tls_error(events[0], tls_emu)
    rh.record(
        f"tls/{auth_type}", message=events[0]["message"].replace(tls_emu.base_url, "https://<emulator>")
    )


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
async def test_trigger_succeeds_with_ca_bundle(tls_emu, tls_connection, auth_type):
    conn_id = tls_connection(auth_type, ca_bundle=tls_emu.ca_file)
    (events,) = await rh.run_triggers([rh.make_trigger("tls-scan", conn_id)], timeout=30)
    assert [(e["status"], e["task_status"]) for e in events] == [("success", 2)]
    assert tls_emu.stats()["tls_handshakes"] >= 1


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_hook_reports_failed_tls_verification_and_names_ca_bundle(tls_emu, tls_connection, auth_type):
    event = CodeCheckHook(tls_connection(auth_type)).wait_for_scan("tls-scan", rh.POLL, timeout=30)
    _assert_tls_error(event, tls_emu)


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_hook_succeeds_with_ca_bundle(tls_emu, tls_connection, auth_type):
    hook = CodeCheckHook(tls_connection(auth_type, ca_bundle=tls_emu.ca_file))
    event = hook.wait_for_scan("tls-scan", rh.POLL, timeout=30)
    assert (event["status"], event["task_status"]) == ("success", 2)
