"""CodeCheckTaskTrigger on its own: serialization without secrets, a missing connection, on_kill."""

from __future__ import annotations

import asyncio
import json

from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger


def test_trigger_serializes_without_secrets_and_resumes_from_kwargs(default_conn_emulator):
    default_conn_emulator.add_task(task_id="scan-s", duration_s=0.6, final_status=3, running=True)
    trigger = CodeCheckTaskTrigger("scan-s", poll_interval=0.2, deadline=None, exec_id="e1")
    classpath, kwargs = trigger.serialize()
    text = json.dumps(kwargs)
    for secret in ("codecheck-password", "emulator-secret-key"):
        assert secret not in text
    module, _, name = classpath.rpartition(".")
    clone = getattr(__import__(module, fromlist=[name]), name)(**kwargs)

    async def first_event():
        async for event in clone.run():
            return event.payload
        return None

    event = asyncio.run(first_event())
    assert event["status"] == "stopped"
    assert event["task_status"] == 3
    assert event["exec_id"] == "e1"


def test_trigger_reports_missing_connection_as_error_event(monkeypatch):
    trigger = CodeCheckTaskTrigger("scan-x", codecheck_conn_id="does_not_exist", poll_interval=0.2)

    async def first_event():
        async for event in trigger.run():
            return event.payload
        return None

    event = asyncio.run(first_event())
    assert event["status"] == "error"
    assert "does_not_exist" in event["message"]


def test_trigger_on_kill_does_not_stop_when_asked_not_to_or_unsure(default_conn_emulator):
    # cancel_on_kill=False never stops; True without a readable task-instance state (no triggerer supervisor
    # here) does not stop either: it may be a triggerer failover (see test_trigger_on_kill.py).
    default_conn_emulator.add_task(task_id="scan-k", duration_s=60, final_status=2, running=True)
    for cancel_on_kill in (False, True):
        trigger = CodeCheckTaskTrigger("scan-k", poll_interval=0.2, cancel_on_kill=cancel_on_kill)
        asyncio.run(trigger.on_kill())
    assert default_conn_emulator.get_task("scan-k")["task_status"] == 0
