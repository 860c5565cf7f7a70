"""Triggerer restarts: waits cancelled at random (seeded) moments and re-created from ``serialize()``.

Each scan is started once through the hook's ``run_task`` (as the operator does before deferring); the
emulator then reports the *previous* verdict for ``lag_s`` before the new scan shows as checking, so every
wait depends on the stale guard (``stale_until``), and a restart forgets that the new scan was already seen
checking. Every wait must still end with the new scan's verdict, with one event, and no second run.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import pytest
import reliability_helpers as rh

from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger

GRACE_S = 3.0
"""stale_until = run time + GRACE_S (the operator's ``new_run_grace``); it must exceed the service's lag."""
SEED = 20260601


def _import(classpath: str) -> type[CodeCheckTaskTrigger]:
    module, _, name = classpath.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def _plan_lagged_scans(
    emulator,
    prefix: str,
    count: int,
    faults: list[dict[str, Any]],
    durations: tuple[float, float] = (1.5, 4.0),
    lags: tuple[float, float] = (0.3, 1.0),
) -> list[dict[str, Any]]:
    """Tasks whose previous verdict differs from the next one; start each scan once; return serialized triggers."""
    rng = random.Random(SEED)
    planned = []
    for i in range(count):
        final = 1 + i % 3
        emulator.add_task(
            task_id=f"{prefix}-{i:03d}",
            duration_s=round(rng.uniform(*durations), 2),
            lag_s=round(rng.uniform(*lags), 2),
            final_status=final,
            initial_status=1 + (i + 1 + i // 3 % 2) % 3,  # always a different terminal status
            faults=faults,
        )
    hook = CodeCheckHook(rh.CONN_ID)
    for i in range(count):
        task_id = f"{prefix}-{i:03d}"
        exec_id = hook.run_task(task_id).exec_id
        trigger = rh.make_trigger(task_id, exec_id=exec_id, stale_until=time.time() + GRACE_S)
        classpath, kwargs = trigger.serialize()
        task = emulator.get_task(task_id)
        planned.append(
            {
                "task": rh.Planned(task_id, task["duration_s"], task["final_status"]),
                "lag_s": task["lag_s"],
                "started": time.time(),
                "classpath": classpath,
                "kwargs": kwargs,
            }
        )
    return planned


class Triggerer:
    """A toy triggerer: one asyncio task per trigger, cancelled and re-created from its serialized form."""

    def __init__(self, planned: list[dict[str, Any]]) -> None:
        self.planned = {p["task"].task_id: p for p in planned}
        self.events: dict[str, list[tuple[float, dict[str, Any]]]] = {task_id: [] for task_id in self.planned}
        self.running: dict[str, asyncio.Task[None]] = {}
        self.restarts = 0
        self.recreated_by_process_restart = 0

    def start(self, task_id: str) -> None:
        entry = self.planned[task_id]
        kwargs = json.loads(json.dumps(entry["kwargs"]))  # as stored in the trigger table
        trigger = _import(entry["classpath"])(**kwargs)
        self.running[task_id] = asyncio.ensure_future(self._collect(task_id, trigger))

    async def _collect(self, task_id: str, trigger: CodeCheckTaskTrigger) -> None:
        async for event in trigger.run():
            self.events[task_id].append((time.time(), event.payload))

    def pending(self) -> list[str]:
        return [task_id for task_id, events in self.events.items() if not events]

    async def kill(self, task_ids: list[str]) -> None:
        tasks = [self.running.pop(task_id) for task_id in task_ids if task_id in self.running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def restart(self, task_ids: list[str]) -> None:
        """Kill and re-create the given waits, unless a wait fired its event in the meantime."""
        await self.kill(task_ids)
        for task_id in task_ids:
            if not self.events[task_id]:
                self.restarts += 1
                self.start(task_id)


async def _first_life(triggerer: Triggerer, rng: random.Random) -> None:
    """Start every wait, then kill a random fifth of the live ones at random moments; finally kill all."""
    for task_id in triggerer.planned:
        triggerer.start(task_id)
    for _ in range(3):
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        pending = triggerer.pending()
        await triggerer.restart(rng.sample(pending, k=len(pending) // 5))
    await asyncio.sleep(rng.uniform(0.1, 0.4))
    await triggerer.kill(list(triggerer.running))  # the triggerer process goes away


async def _second_life(triggerer: Triggerer, rng: random.Random, rounds: int) -> None:
    """A new triggerer (a new event loop) re-creates every wait that has not fired, with more random kills."""
    pending = triggerer.pending()
    triggerer.restarts += len(pending)
    triggerer.recreated_by_process_restart = len(pending)
    for task_id in pending:
        triggerer.start(task_id)
    for _ in range(rounds):
        await asyncio.sleep(rng.uniform(0.05, 0.5))
        pending = triggerer.pending()
        await triggerer.restart(rng.sample(pending, k=len(pending) // 5))
    await asyncio.wait_for(asyncio.gather(*triggerer.running.values()), rh.GLOBAL_TIMEOUT_S)


def _restart_scenario(emulator, reliability_conn, waits: int, rounds: int) -> None:
    reliability_conn()
    faults = [rh.fault_spec("reset", 0.05), rh.fault_spec("http_503", 0.05)]
    planned = _plan_lagged_scans(emulator, f"restart{waits}", waits, faults)
    rng = random.Random(SEED)
    triggerer = Triggerer(planned)
    started = time.monotonic()
    asyncio.run(_first_life(triggerer, rng))
    asyncio.run(_second_life(triggerer, rng, rounds))
    elapsed = time.monotonic() - started

    lateness = []
    for entry in planned:
        task: rh.Planned = entry["task"]
        events = triggerer.events[task.task_id]
        assert len(events) == 1, (task, events)
        fired_at, event = events[0]
        assert (event["status"], event["task_status"]) == (task.status_name, task.final_status), (task, event)
        assert event["exec_id"] == entry["kwargs"]["exec_id"]
        lateness.append(fired_at - (entry["started"] + entry["lag_s"] + task.duration_s))
    stats = emulator.stats()
    assert stats["runs"] == {entry["task"].task_id: 1 for entry in planned}  # no second scan, ever
    # The process restart came while many waits were pending, and single waits were killed besides.
    assert triggerer.recreated_by_process_restart >= waits // 4
    assert triggerer.restarts > triggerer.recreated_by_process_restart
    # A restarted wait that missed the "checking" phase trusts the verdict only at stale_until: the delay after
    # the scan's end stays within the grace period plus a poll (and retries of the injected faults).
    assert max(lateness) <= GRACE_S + 5
    requests = rh.progress_requests(stats)
    ideal = sum((e["lag_s"] + e["task"].duration_s) / rh.POLL + 1 for e in planned)
    # Every re-created wait polls at once, and may poll through the rest of the grace period.
    budget = rh.K_INDEPENDENT * (ideal + triggerer.restarts * (GRACE_S / rh.POLL + 1))
    assert requests <= budget
    rh.record(
        f"restart/{waits}",
        waits=waits,
        restarts=triggerer.restarts,
        recreated_by_process_restart=triggerer.recreated_by_process_restart,
        correct=f"{waits}/{waits}",
        scans_started=sum(stats["runs"].values()),
        requests=requests,
        ideal=round(ideal),
        ratio=round(requests / ideal, 2),
        max_lateness_s=round(max(lateness), 2),
        seconds=round(elapsed, 1),
    )


def test_waits_survive_triggerer_restarts(emulator, reliability_conn):
    _restart_scenario(emulator, reliability_conn, waits=40, rounds=4)


@pytest.mark.slow
def test_200_waits_survive_triggerer_restarts(emulator, reliability_conn):
    _restart_scenario(emulator, reliability_conn, waits=200, rounds=8)


async def test_stale_guard_is_what_keeps_lagged_waits_correct(emulator, reliability_conn):
    """Control: without ``stale_until`` the same lagged scans report the previous verdict."""
    reliability_conn()
    planned = _plan_lagged_scans(emulator, "control", 6, [], durations=(0.5, 1.0), lags=(1.0, 1.5))
    unguarded = [rh.make_trigger(p["task"].task_id, exec_id=p["kwargs"]["exec_id"]) for p in planned]
    guarded = [_import(p["classpath"])(**p["kwargs"]) for p in planned]
    events = await rh.run_triggers(unguarded + guarded)
    for entry, (unguarded_event,), (guarded_event,) in zip(planned, events[:6], events[6:], strict=True):
        task = entry["task"]
        assert unguarded_event["task_status"] != task.final_status  # the previous scan's verdict
        assert guarded_event["task_status"] == task.final_status


async def test_cancelled_triggers_stop_at_once(emulator, reliability_conn):
    """A triggerer cancels a trigger's task to stop it; the wait must not go on polling.

    Regression: the poll was bounded with ``asyncio.wait_for``, which before Python 3.12 swallows a cancellation
    arriving just as the poll completes; about one wait in twenty then kept running until its scan ended.
    """
    reliability_conn()
    planned = rh.add_tasks(emulator, "cancel", 40, min_duration=60)
    # A short poll interval makes polls complete often, so cancellations land on that moment often.
    running = [
        asyncio.ensure_future(rh.drain(rh.make_trigger(t.task_id, poll_interval=0.05))) for t in planned
    ]
    rng = random.Random(SEED)
    await asyncio.sleep(0.5)
    still_running = []
    for task, future in zip(planned, running, strict=True):
        await asyncio.sleep(rng.uniform(0, 0.05))
        future.cancel()
        done, _ = await asyncio.wait({future}, timeout=1.0)
        if not done:
            still_running.append(task.task_id)
    for future in running:
        future.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    assert still_running == []
    assert all(future.cancelled() for future in running)  # no event, no swallowed CancelledError
