"""CodeCheckScanEventTrigger against the emulator: trigger.run() driven in this test's event loop.

Real sockets, the real hook and client; scans are started by the emulator's commit admin call and finished by
moving its ManualClock. The asset state store is played by an in-memory store with the accessor's async API
(aget/aset), as the 3.3 triggerer injects it; nothing of our HTTP layer is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_codecheck.emulator.server import EmulatorServer
from airflow_provider_codecheck.emulator.state import ManualClock
from airflow_provider_codecheck.testing import connection_env
from airflow_provider_codecheck.triggers import events
from airflow_provider_codecheck.triggers.events import STATE_KEY, CodeCheckScanEventTrigger

PROJECT = "0123456789abcdef0123456789abcdef"
CONN_ID = "codecheck_events"
TASK = "watched"
WAIT_S = 20.0

needs_airflow_3 = pytest.mark.skipif(
    not events.EVENT_TRIGGERS_SUPPORTED, reason="event-driven scheduling needs Airflow >= 3.0"
)


class MemoryStore:
    """The asset state store accessor's async surface; values go through JSON as in the real store."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values[key])) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))
        self.writes += 1
        async with self._condition():
            self._condition().notify_all()

    async def wait_for(self, predicate: Callable[[dict[str, Any] | None], bool]) -> None:
        async with self._condition():
            await asyncio.wait_for(
                self._condition().wait_for(lambda: predicate(self.values.get(STATE_KEY))), WAIT_S
            )

    def seen(self) -> set[str]:
        return set((self.values.get(STATE_KEY) or {}).get("seen", {}))


class Watch:
    """Runs the trigger's generator in a task; its payloads arrive in a queue."""

    def __init__(self, trigger: CodeCheckScanEventTrigger) -> None:
        self.trigger = trigger
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for event in self.trigger.run():
            await self.queue.put(event.payload)

    async def next(self) -> dict[str, Any]:
        getter = asyncio.ensure_future(self.queue.get())
        done, _ = await asyncio.wait({getter, self.task}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            if self.task.done():
                self.task.result()  # the trigger died: show why
            raise AssertionError("no event in time")
        return getter.result()

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        assert self.queue.empty(), f"unexpected events: {self.queue}"


@pytest.fixture
def clocked_event_emulator(
    manual_clock_emulator: tuple[EmulatorServer, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> tuple[EmulatorServer, ManualClock]:
    """The manual-clock emulator, reset, with CONN_ID pointing at it and task TASK."""
    server, clock = manual_clock_emulator
    server.reset()
    monkeypatch.setenv(*connection_env(CONN_ID, server.base_url, project_id=PROJECT))
    server.add_task(task_id=TASK, duration_s=10, defects={"major": 2})
    return server, clock


def make_trigger(store: MemoryStore | None, **kwargs: Any) -> CodeCheckScanEventTrigger:
    trigger = CodeCheckScanEventTrigger(TASK, codecheck_conn_id=CONN_ID, poll_interval=0.01, **kwargs)
    trigger.commit_delay_s = 0.0  # commit at the next poll (the delay itself is a production safety margin)
    trigger.asset_state_store = store  # what the 3.3 triggerer injects before run()
    return trigger


def scan(server: EmulatorServer, clock: ManualClock, **spec: Any) -> str:
    """A commit starts a scan; the clock moves past its end. Returns the scan id the trigger should report."""
    exec_id = server.commit(TASK, **spec)
    clock.advance(10)
    return f"job:{exec_id}"


async def started(store: MemoryStore) -> None:
    await store.wait_for(lambda value: value is not None)  # the first poll recorded the history


@needs_airflow_3
async def test_two_scans_two_events(clocked_event_emulator: tuple[EmulatorServer, ManualClock]) -> None:
    server, clock = clocked_event_emulator
    store = MemoryStore()
    watch = Watch(make_trigger(store))
    await started(store)
    first = scan(server, clock)
    one = await watch.next()
    second = scan(server, clock, final_status=1, defects={"critical": 1})
    two = await watch.next()
    await watch.stop()
    assert [one["scan_id"], two["scan_id"]] == [first, second]
    assert one["status"] == "success"
    assert one["task_status"] == 2
    assert one["ratio"] == 100
    assert one["is_access"] is True
    assert one["is_access_raw"] == "1"
    assert one["defect_counts"] == {"critical": 0, "major": 2, "minor": 0, "suggestion": 0}
    assert one["issue_counts"] == {"critical": 0, "serious": 2, "normal": 0, "prompt": 0}
    assert one["job_id"] == first.removeprefix("job:")
    assert one["check_time"] <= one["check_end_time"]
    assert two["status"] == "failed"
    assert two["ratio"] is None
    assert two["is_access"] is False
    assert two["issue_counts"]["critical"] == 1
    json.dumps(one)  # the payload is plain JSON (what Airflow stores in the asset event)


@needs_airflow_3
async def test_only_success(clocked_event_emulator: tuple[EmulatorServer, ManualClock]) -> None:
    server, clock = clocked_event_emulator
    store = MemoryStore()
    watch = Watch(make_trigger(store, only_success=True))
    await started(store)
    failed = scan(server, clock, final_status=1)
    stopped = scan(server, clock, final_status=3)
    succeeded = scan(server, clock, final_status=2)
    event = await watch.next()
    assert event["scan_id"] == succeeded
    await store.wait_for(lambda value: {failed, stopped, succeeded} <= set((value or {}).get("seen", {})))
    await watch.stop()  # and nothing else came


@needs_airflow_3
async def test_no_event_for_scans_finished_before_the_watcher_started(
    clocked_event_emulator: tuple[EmulatorServer, ManualClock],
) -> None:
    server, clock = clocked_event_emulator
    old = {scan(server, clock), scan(server, clock, final_status=1)}
    store = MemoryStore()
    watch = Watch(make_trigger(store))
    await started(store)
    assert store.seen() == old
    new = scan(server, clock)
    assert (await watch.next())["scan_id"] == new
    await watch.stop()


@needs_airflow_3
async def test_restart_with_the_same_state_neither_replays_nor_loses(
    clocked_event_emulator: tuple[EmulatorServer, ManualClock],
) -> None:
    server, clock = clocked_event_emulator
    store = MemoryStore()
    first_watch = Watch(make_trigger(store))
    await started(store)
    first = scan(server, clock)
    assert (await first_watch.next())["scan_id"] == first
    await store.wait_for(lambda value: first in (value or {}).get("seen", {}))  # committed at the next poll
    await first_watch.stop()

    while_down = scan(server, clock)  # finished while no trigger ran
    second_watch = Watch(make_trigger(store))  # a new instance: the triggerer restarted
    assert (await second_watch.next())["scan_id"] == while_down
    after = scan(server, clock)
    assert (await second_watch.next())["scan_id"] == after  # and `first` never came again
    await second_watch.stop()


@needs_airflow_3
async def test_restart_before_the_commit_repeats_the_event(
    clocked_event_emulator: tuple[EmulatorServer, ManualClock],
) -> None:
    """At least once: an event not yet committed to the watermark is fired again after a restart."""
    server, clock = clocked_event_emulator
    store = MemoryStore()
    trigger = make_trigger(store)
    trigger.commit_delay_s = 3600.0  # the triggerer dies before the watermark moves
    first_watch = Watch(trigger)
    await started(store)
    first = scan(server, clock)
    assert (await first_watch.next())["scan_id"] == first
    await first_watch.stop()
    assert first not in store.seen()

    second_watch = Watch(make_trigger(store))
    assert (await second_watch.next())["scan_id"] == first
    await second_watch.stop()


class ForgetfulStore(MemoryStore):
    """What a trigger has on Airflow 3.0-3.2 (no asset state store): nothing survives the instance. The writes
    still arrive here, so the test can see when the first poll is done."""

    async def aget(self, key: str, default: Any = None) -> Any:
        return default


@needs_airflow_3
async def test_without_a_state_store_a_restart_starts_afresh(
    clocked_event_emulator: tuple[EmulatorServer, ManualClock],
) -> None:
    """No replay after a restart, but a scan that finished while no trigger ran gets no event (documented in
    docs/event-driven.md for Airflow 3.0-3.2)."""
    server, clock = clocked_event_emulator
    store = ForgetfulStore()
    first_watch = Watch(make_trigger(store))
    await started(store)
    first = scan(server, clock)
    assert (await first_watch.next())["scan_id"] == first
    await first_watch.stop()

    lost = scan(server, clock)
    store.values.clear()
    second_watch = Watch(make_trigger(store))
    await started(store)
    assert lost in store.seen()  # taken as history by the new instance: no event
    after = scan(server, clock)
    assert (await second_watch.next())["scan_id"] == after
    await second_watch.stop()


@needs_airflow_3
def test_serialize_round_trip_and_repr() -> None:
    trigger = CodeCheckScanEventTrigger("t-9", "conn-x", poll_interval=30, only_success=True)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_codecheck.triggers.events.CodeCheckScanEventTrigger"
    assert kwargs == {
        "codecheck_task_id": "t-9",
        "codecheck_conn_id": "conn-x",
        "poll_interval": 30.0,
        "only_success": True,
    }
    assert CodeCheckScanEventTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert "t-9" in repr(trigger)
    from airflow.triggers.base import BaseEventTrigger

    assert isinstance(trigger, BaseEventTrigger)


@pytest.mark.skipif(events.EVENT_TRIGGERS_SUPPORTED, reason="Airflow 2 only")
def test_airflow_2_refuses_with_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=r"Airflow >= 3\.0"):
        CodeCheckScanEventTrigger("t-9")
