"""CodeCheckHook.test_connection judges success by what the service answers for an unknown task."""

from __future__ import annotations

import json

import pytest

from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
from airflow_provider_codecheck.testing import connection_json


def _hook(monkeypatch, default_conn_emulator, **changes):
    conn = json.loads(connection_json(default_conn_emulator.base_url))
    conn.update(changes)
    monkeypatch.setenv("AIRFLOW_CONN_CODECHECK_PROBE", json.dumps(conn))
    return CodeCheckHook("codecheck_probe")


def test_unknown_task_answer_proves_the_credentials(default_conn_emulator, monkeypatch):
    # The documented answer for a task id that does not exist is 200 CC.00050002 (emulator notes/README).
    ok, message = _hook(monkeypatch, default_conn_emulator).test_connection()
    assert ok, message
    assert default_conn_emulator.base_url in message
    assert default_conn_emulator.stats()["runs"] == {}


def test_rejected_password_fails_the_test(default_conn_emulator, monkeypatch):
    ok, message = _hook(monkeypatch, default_conn_emulator, password="wrong-password").test_connection()
    assert not ok
    assert "wrong-password" not in message


@pytest.mark.parametrize("kind", ["forbidden_403", "http_500"])
def test_other_answers_fail_the_test_with_the_reason(default_conn_emulator, monkeypatch, kind):
    default_conn_emulator.set_faults([{"kind": kind, "probability": 1.0, "routes": ["progress"]}])
    ok, message = _hook(monkeypatch, default_conn_emulator).test_connection()
    assert not ok
    assert message
