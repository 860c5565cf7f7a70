"""Helpers of the reliability suite (a uniquely named module: ``conftest`` is not importable by name).

Scenario constants, task set-up on the emulator, the request-budget arithmetic, drivers for many concurrent
trigger runs, and the figures file that ``docs/reliability.md`` is rendered from.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_codecheck import testing
from airflow_provider_codecheck.emulator.server import EmulatorServer
from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger

CONN_ID = "codecheck_rel"
POLL = 0.2
"""Seconds between polls in every scenario: short scans, many polls per scan."""
FAULT_P = 0.3
"""Share of progress requests a probability fault replaces."""
RETRY_AFTER_S = 0.3
"""Retry-After of throttle_429 (the client must wait at least that long)."""
SLOW_DELAY_S = 1.0
SLOW_TIMEOUT_S = 0.5
"""Connection ``timeout`` extra for the ``slow`` row: shorter than the fault's delay, so it is a read timeout."""
GLOBAL_TIMEOUT_S = 90.0
"""No scenario may run longer: a hung wait fails the test instead of hanging the suite."""

# The fault matrix's rows: the retried kinds, and token_expired as mass revocations (see ``revocations``).
TRANSIENT_KINDS = (*testing.RETRIED_FAULTS, "token_expired")
PERMANENT_KINDS = testing.PERMANENT_FAULTS
"""Kind -> the error_code the wait must report after a single attempt."""
STATUS_NAMES = {1: "failed", 2: "success", 3: "stopped"}

# Request budget: requests <= K * ideal, where ideal = sum over tasks of (duration / poll + 1), the polls a
# fault-free waiter needs from the moment the scan starts. With independent faults each answer costs on average
# 1 / (1 - 0.3) = 1.43 requests; the waits start after the scans (set-up time), so they need fewer polls than
# ideal, and measured ratios are 0.6-1.1. K = 2 leaves room for scheduling noise on a loaded 2-core machine
# while still catching a retry loop without backoff (that costs 10x and more).
K_INDEPENDENT = 2.0
# token_expired is correlated: one fault revokes the token that every concurrent waiter shares, so each
# waiter with a request in flight pays one more 401 (and the pool one IAM call). Measured 2.0-2.4 at 50 waits.
K_TOKEN_EXPIRED = 4.0


def k_for(kind: str) -> float:
    return K_TOKEN_EXPIRED if kind == "token_expired" else K_INDEPENDENT


def fault_spec(kind: str, probability: float = FAULT_P, routes: tuple[str, ...] = ("progress",)) -> dict:
    return testing.fault(
        kind, probability=probability, routes=routes, retry_after=RETRY_AFTER_S, delay_s=SLOW_DELAY_S
    )


FIRST_REVOCATION_S = 1.0
REVOKE_EVERY_S = 10.0
"""``token_expired`` revokes every token at 1 s into a scenario, then every 10 s: farther apart than one call
can last with the default retry policy (at most 0.5 + 1 + 2 + 4 s of backoff), so no call sees two revocations,
which would rightly end it (a renewed token rejected again is permanent)."""


class Revoker:
    """Revokes every issued token on the schedule above from a thread, until stopped; counts the events."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emu = emulator
        self.events = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pause = FIRST_REVOCATION_S
        while not self._stop.wait(pause):
            pause = REVOKE_EVERY_S
            self.emu.expire_tokens()
            self.events += 1

    def __enter__(self) -> Revoker:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def revocations(emulator: EmulatorServer, kinds: Iterable[str]) -> Iterator[Revoker | None]:
    """``token_expired`` as what it models: mass revocations, events at moments in time.

    As a per-request chance it would also revoke a token just renewed for the same call, and since issue 11 (B1)
    a renewed token rejected again is a permanent error: real revocations are rare events, far apart compared
    with one call. Every waiter then pays one 401 per event and the process fetches one token per event.
    """
    if "token_expired" not in kinds:
        yield None
        return
    with Revoker(emulator) as revoker:
        yield revoker


def plan(kinds: Iterable[str], q: float) -> list[dict[str, Any]]:
    """Per-request fault specs for ``kinds``; ``token_expired`` is left to ``revocations``."""
    return [fault_spec(kind, q) for kind in kinds if kind != "token_expired"]


def check_revocations(stats: dict[str, Any], revoker: Revoker | None) -> None:
    """Something was injected, and each revocation cost one IAM token at most (single-flight, no storm)."""
    if revoker is None:
        assert stats["faults_injected"], "the scenario injected no fault"
        return
    assert revoker.events > 0, "no revocation happened during the scenario"
    assert stats["iam_tokens_issued"] <= revoker.events + 1, (stats["iam_tokens_issued"], revoker.events)


def timeout_extra(kinds: Iterable[str]) -> dict[str, Any]:
    """Connection extras for a scenario: a short read timeout when ``slow`` is among the faults."""
    return {"timeout": SLOW_TIMEOUT_S if "slow" in kinds else 10}


@dataclass(frozen=True)
class Planned:
    task_id: str
    duration_s: float
    final_status: int

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.final_status]


def add_tasks(
    emulator: EmulatorServer,
    prefix: str,
    count: int,
    faults: list[dict[str, Any]] | None = None,
    min_duration: float = 1.0,
    step: float = 0.25,
    running: bool = True,
    **spec: Any,
) -> list[Planned]:
    """``count`` tasks with durations ``min_duration + (i % 7) * step`` and final statuses 1, 2, 3 in turn.

    Faults go into each task's own plan: the emulator seeds it with ``"<seed>:<task_id>"``, so which of a
    task's requests fail does not depend on how the concurrent waits interleave.
    """
    planned = []
    for i in range(count):
        task = Planned(f"{prefix}-{i:03d}", min_duration + (i % 7) * step, 1 + i % 3)
        emulator.add_task(
            task_id=task.task_id,
            duration_s=task.duration_s,
            final_status=task.final_status,
            running=running,
            faults=faults or [],
            **spec,
        )
        planned.append(task)
    return planned


def ideal_polls(planned: Iterable[Planned], poll: float = POLL) -> float:
    return sum(task.duration_s / poll + 1 for task in planned)


def progress_requests(stats: dict[str, Any]) -> int:
    """Progress requests that reached the emulator.

    A ``slow`` request the client gave up on is cancelled on the server before it is counted in ``requests``;
    it is counted in ``faults_injected`` (progress is the only faulted route in these scenarios).
    """
    return testing.route_requests(stats, "progress") + stats["faults_injected"].get("slow", 0)


def faulted_share(stats: dict[str, Any]) -> float:
    total = progress_requests(stats)
    return sum(stats["faults_injected"].values()) / total if total else 0.0


def make_trigger(task_id: str, conn_id: str = CONN_ID, **kwargs: Any) -> CodeCheckTaskTrigger:
    kwargs.setdefault("poll_interval", POLL)
    kwargs.setdefault("deadline", time.time() + 300)
    return CodeCheckTaskTrigger(codecheck_task_id=task_id, codecheck_conn_id=conn_id, **kwargs)


async def drain(trigger: CodeCheckTaskTrigger) -> list[dict[str, Any]]:
    """Every event the trigger yields until its generator ends (the triggerer takes the first)."""
    return [event.payload async for event in trigger.run()]


async def run_triggers(
    triggers: list[CodeCheckTaskTrigger], timeout: float = GLOBAL_TIMEOUT_S
) -> list[list[dict[str, Any]]]:
    """Run all triggers concurrently in this loop; a wait still running after ``timeout`` fails the test."""
    return await asyncio.wait_for(asyncio.gather(*(drain(t) for t in triggers)), timeout)


def check_final_events(planned: list[Planned], events: list[list[dict[str, Any]]]) -> list[str]:
    """Problems found: a lost or duplicated event, or a wrong verdict (empty when all is well)."""
    problems = []
    for task, got in zip(planned, events, strict=True):
        if len(got) != 1:
            problems.append(f"{task.task_id}: {len(got)} events")
            continue
        event = got[0]
        if (event["status"], event["task_status"]) != (task.status_name, task.final_status):
            problems.append(f"{task.task_id}: expected {task.status_name}, got {event}")
    return problems


# --- figures for docs/reliability.md -------------------------------------------------------------------

FIGURES_ENV = "RELIABILITY_FIGURES"
_FIGURES_LOCK = threading.Lock()


def record(row: str, **figures: Any) -> None:
    """Add a row of measured figures to the JSON file named by ``$RELIABILITY_FIGURES`` (if set)."""
    path = os.environ.get(FIGURES_ENV)
    if not path:
        return
    with _FIGURES_LOCK:
        file = Path(path)
        data = json.loads(file.read_text()) if file.exists() and file.stat().st_size else {"rows": {}}
        data["rows"][row] = figures
        file.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
