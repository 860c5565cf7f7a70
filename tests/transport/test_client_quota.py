"""Many concurrent waits against the emulator's quota, over real sockets: the request budget keeps 429s rare.

No mock of the HTTP layer: the waits are the shared wait flow (core/waiting.py) driven by the real transports,
the quota is the emulator's token bucket (429 APIGW.0308 with Retry-After). Only counts are asserted (the
emulator's stats and each wait's verdict), never durations.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import client_helpers as h
import pytest

from airflow_provider_codecheck.core import budgets
from airflow_provider_codecheck.core.driving import run_flow, run_flow_async
from airflow_provider_codecheck.core.errors import CodeCheckError
from airflow_provider_codecheck.core.retry import RetryPolicy
from airflow_provider_codecheck.core.waiting import Pause, Poll, wait_for_scan
from airflow_provider_codecheck.emulator.server import EmulatorServer
from airflow_provider_codecheck.transport.aio import AsyncClient
from airflow_provider_codecheck.transport.sync import SyncClient

WAITS = 40
RATE = 20  # requests per second the emulator's quota lets through (its burst: one second of it)
POLL = 0.25  # 40 waits polling every 0.25 s would ask for 160 requests/s: 8x the quota
POLICY = RetryPolicy(max_attempts=8, base_delay=0.05, max_delay=1.0, max_elapsed=60)


def _scans(emulator_with_t1: EmulatorServer, prefix: str) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(WAITS)]
    for i, task_id in enumerate(ids):
        # durations 1.5-3.5 s, a mix of verdicts
        emulator_with_t1.add_task(
            task_id=task_id, duration_s=1.5 + 2 * i / WAITS, final_status=(2, 1)[i % 2], running=True
        )
    emulator_with_t1.set_quota(rate=RATE, scope="api")
    return ids


def _expected(i: int) -> str:
    return ("success", "failed")[i % 2]


def _check(emulator_with_t1: EmulatorServer, events: list[dict[str, Any]]) -> None:
    assert [e["status"] for e in events] == [_expected(i) for i in range(WAITS)]
    stats = emulator_with_t1.stats()
    progress = sum(n for key, n in stats["requests"].items() if key.startswith("progress "))
    throttled = stats["throttled"].get("progress", 0)
    # Unpaced, ~7 of every 8 polls would be refused. The first round is refused beyond the quota's burst (the
    # waits start together: WAITS - RATE 429s, nothing configured); the budget learns from it and keeps the
    # rest rare.
    assert throttled <= WAITS - RATE + 5, stats
    assert progress - throttled >= WAITS, stats  # every verdict came from a poll the quota let through


def test_concurrent_async_waits_share_one_budget_and_rarely_meet_the_quota(
    emulator_with_t1: EmulatorServer,
) -> None:
    settings = h.aksk_settings(emulator_with_t1)
    ids = _scans(emulator_with_t1, "aq")

    async def main() -> list[dict[str, Any]]:
        async with AsyncClient(settings, POLICY) as client:

            async def wait(task_id: str) -> dict[str, Any]:
                async def answer(effect: Any) -> Any:
                    if isinstance(effect, Poll):
                        try:
                            return await client.get_task_progress(task_id)
                        except CodeCheckError as error:
                            return error
                    if isinstance(effect, Pause):
                        await asyncio.sleep(effect.seconds)
                    return None

                return await run_flow_async(wait_for_scan(task_id, POLL, None), answer)

            return list(await asyncio.gather(*(wait(t) for t in ids)))

    _check(emulator_with_t1, asyncio.run(main()))
    assert budgets.BUDGETS.get(budgets.budget_key(settings)).throttles >= 1


def test_concurrent_sync_waits_in_threads_share_one_budget(emulator_with_t1: EmulatorServer) -> None:
    settings = h.aksk_settings(emulator_with_t1)
    ids = _scans(emulator_with_t1, "sq")
    events: list[dict[str, Any]] = [{} for _ in ids]

    def wait(i: int) -> None:
        client = SyncClient(settings, POLICY)

        def answer(effect: Any) -> Any:
            if isinstance(effect, Poll):
                try:
                    return client.get_task_progress(ids[i])
                except CodeCheckError as error:
                    return error
            if isinstance(effect, Pause):
                threading.Event().wait(effect.seconds)
            return None

        try:
            events[i] = run_flow(wait_for_scan(ids[i], POLL, None), answer)
        finally:
            client.close()

    threads = [threading.Thread(target=wait, args=(i,)) for i in range(WAITS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _check(emulator_with_t1, events)


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_an_explicit_cap_keeps_every_call_under_the_quota(
    emulator_with_t1: EmulatorServer, transport: str
) -> None:
    emulator_with_t1.set_quota(rate=5, burst=5, scope="all")
    settings = h.aksk_settings(emulator_with_t1, max_requests_per_second=4)
    for _ in range(12):
        h.invoke(transport, settings, "get_task_progress", h.TASK, policy=POLICY)
    assert emulator_with_t1.stats()["throttled"] == {}
