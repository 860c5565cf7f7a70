"""B11: the trigger's on_kill stops the scan only on a real user kill, never on a triggerer failover.

Airflow 3.3.0-3.3.2 call a trigger's on_kill also when the trigger was reassigned to another triggerer
(apache/airflow PR #73454). The trigger asks the supervisor (GetTICount, states=["deferred"]) whether its
task instance is still deferred; the supervisor's answer is played here by a stand-in for SUPERVISOR_COMMS
(the CodeArts side is the real emulator over real sockets).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger, decide_stop_on_kill

try:  # Airflow >= 3 (the only line that calls a trigger's on_kill); the decision table runs everywhere
    from airflow.sdk.execution_time import comms as comms_module
    from airflow.sdk.execution_time import task_runner
except ImportError:  # Airflow 2.11
    comms_module = task_runner = None

needs_sdk = pytest.mark.skipif(comms_module is None, reason="Airflow 2.11 has no trigger on_kill / Task SDK")


@pytest.mark.parametrize(
    ("cancel_on_kill", "still_deferred", "stop"),
    [
        (True, False, True),  # user kill: the TI left DEFERRED
        (True, True, False),  # failover: the TI is deferred under another triggerer
        (True, None, False),  # state unknown: never stop on a guess
        (False, False, False),
    ],
)
def test_decide_stop_on_kill(cancel_on_kill, still_deferred, stop):
    decision, reason = decide_stop_on_kill(cancel_on_kill, still_deferred)
    assert decision is stop
    assert reason


class _Comms:
    """Answers the trigger's GetTICount like the triggerer's supervisor would (or fails)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.asked: list[Any] = []

    async def asend(self, msg: Any) -> Any:
        if not isinstance(msg, comms_module.GetTICount):
            return None  # e.g. MaskSecret, sent when the connection is read
        self.asked.append(msg)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _trigger(task_id: str) -> CodeCheckTaskTrigger:
    trigger = CodeCheckTaskTrigger(task_id, poll_interval=0.2, cancel_on_kill=True)
    trigger.task_instance = SimpleNamespace(
        dag_id="d", run_id="r", task_id="scan", map_index=-1, try_number=1
    )
    return trigger


@needs_sdk
@pytest.mark.parametrize(
    ("answer", "stopped"),
    [
        ({"count": 0}, True),  # user kill
        ({"count": 1}, False),  # reassigned to another triggerer
        (RuntimeError("supervisor gone"), False),  # cannot tell: do not stop
    ],
)
def test_trigger_on_kill_asks_whether_the_task_is_still_deferred(
    default_conn_emulator, monkeypatch, answer, stopped
):
    if isinstance(answer, dict):
        answer = comms_module.TICount(**answer)
    default_conn_emulator.add_task(task_id="scan-k2", duration_s=60, final_status=2, running=True)
    comms = _Comms(answer)
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    asyncio.run(_trigger("scan-k2").on_kill())
    assert default_conn_emulator.get_task("scan-k2")["task_status"] == (3 if stopped else 0)
    (asked,) = comms.asked
    assert asked.states == ["deferred"]
    assert (asked.dag_id, asked.run_ids, asked.task_ids, asked.map_index) == ("d", ["r"], ["scan"], -1)


@needs_sdk
def test_trigger_on_kill_stops_only_a_scan_still_checking(default_conn_emulator, monkeypatch):
    default_conn_emulator.add_task(
        task_id="scan-done", duration_s=0.1, final_status=2, running=False, initial_status=2
    )
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", _Comms(comms_module.TICount(count=0)), raising=False)
    asyncio.run(_trigger("scan-done").on_kill())
    assert default_conn_emulator.stats()["requests"].get("stop 200") is None


@needs_sdk
def test_trigger_on_kill_still_stops_when_the_progress_read_fails(default_conn_emulator, monkeypatch):
    # A real kill, but progress cannot be read (here: a job_id the service does not know): stop anyway.
    default_conn_emulator.add_task(task_id="scan-k3", duration_s=60, final_status=2, running=True)
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", _Comms(comms_module.TICount(count=0)), raising=False)
    trigger = _trigger("scan-k3")
    trigger.job_id = trigger.exec_id = "ghost"
    asyncio.run(trigger.on_kill())
    assert default_conn_emulator.get_task("scan-k3")["task_status"] == 3
