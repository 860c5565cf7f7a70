"""CodeCheckHook.test_connection judges success by what the service answers for an unknown task."""

from __future__ import annotations

import json

import pytest
from dag_helpers import connection_json

from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook


def _hook(monkeypatch, emulator, **changes):
    conn = json.loads(connection_json(emulator.base_url))
    conn.update(changes)
    monkeypatch.setenv("AIRFLOW_CONN_CODECHECK_PROBE", json.dumps(conn))
    return CodeCheckHook("codecheck_probe")


def test_unknown_task_answer_proves_the_credentials(emulator, monkeypatch):
    # The documented answer for a task id that does not exist is 200 CC.00050002 (emulator notes/README).
    ok, message = _hook(monkeypatch, emulator).test_connection()
    assert ok, message
    assert emulator.base_url in message
    assert emulator.stats()["runs"] == {}


def test_rejected_password_fails_the_test(emulator, monkeypatch):
    ok, message = _hook(monkeypatch, emulator, password="wrong-password").test_connection()
    assert not ok
    assert "wrong-password" not in message


@pytest.mark.parametrize("kind", ["forbidden_403", "http_500"])
def test_other_answers_fail_the_test_with_the_reason(emulator, monkeypatch, kind):
    emulator.set_faults([{"kind": kind, "probability": 1.0, "routes": ["progress"]}])
    ok, message = _hook(monkeypatch, emulator).test_connection()
    assert not ok
    assert message
