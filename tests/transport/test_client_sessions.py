"""AsyncClient: one shared aiohttp session per event loop and transport settings, keep-alive, closed at the end."""

from __future__ import annotations

import asyncio
import threading

import client_helpers as h
import pytest

from airflow_provider_codecheck.core.iam import TokenCache
from airflow_provider_codecheck.transport.aio import AsyncClient
from airflow_provider_codecheck.transport.sync import SyncClient


async def test_clients_with_the_same_settings_share_one_session(emulator_with_t1):
    settings = h.settings_for("aksk", emulator_with_t1)
    first = AsyncClient(settings, h.FAST)
    second = AsyncClient(settings, h.FAST)
    async with first:
        async with second:
            session = first._shared.session
            assert second._shared.session is session
            await asyncio.gather(first.get_task_progress(h.TASK), second.get_task_progress(h.TASK))
        assert not session.closed, "still used by the first client"
        await first.get_task_progress(h.TASK)
    assert session.closed, "closed when the last user left"
    # A later client gets a new, open session.
    async with AsyncClient(settings, h.FAST) as third:
        assert third._shared.session is not session
        assert not third._shared.session.closed
        await third.get_task_progress(h.TASK)


async def test_different_auth_same_transport_settings_share_a_session(emulator_with_t1):
    token = AsyncClient(h.settings_for("token", emulator_with_t1), h.FAST, token_cache=TokenCache())
    aksk = AsyncClient(h.settings_for("aksk", emulator_with_t1), h.FAST)
    async with token, aksk:
        assert token._shared.session is aksk._shared.session
        await token.get_task_progress(h.TASK)
        await aksk.get_task_progress(h.TASK)


async def test_different_timeouts_get_different_sessions(emulator_with_t1):
    short = AsyncClient(h.settings_for("aksk", emulator_with_t1, timeout=5), h.FAST)
    long = AsyncClient(h.settings_for("aksk", emulator_with_t1, timeout=50), h.FAST)
    async with short, long:
        assert short._shared.session is not long._shared.session


async def test_sequential_calls_reuse_connections(emulator_with_t1):
    settings = h.settings_for("password", emulator_with_t1)
    async with AsyncClient(settings, h.FAST, token_cache=TokenCache()) as client:
        for _ in range(30):
            await client.get_task_progress(h.TASK)
    one = AsyncClient(settings, h.FAST, token_cache=TokenCache())
    two = AsyncClient(settings, h.FAST, token_cache=TokenCache())
    async with one, two:
        for _ in range(10):
            await one.get_defects_summary(h.TASK)
            await two.get_defects_statistic(h.TASK)
    stats = emulator_with_t1.stats()
    assert stats["requests_total"] == 30 + 20 + 3  # three IAM tokens: each client has its own cache
    # Keep-alive: one connection per session lifetime, not one per call.
    assert stats["connections"] <= 2, stats


def test_sync_client_reuses_its_connection(emulator_with_t1):
    client = SyncClient(h.settings_for("aksk", emulator_with_t1), h.FAST)
    for _ in range(20):
        client.get_task_progress(h.TASK)
    client.close()
    assert emulator_with_t1.stats()["connections"] == 1


async def test_use_outside_async_with_is_refused(emulator_with_t1):
    client = AsyncClient(h.settings_for("aksk", emulator_with_t1), h.FAST)
    with pytest.raises(RuntimeError, match="async with"):
        await client.get_task_progress(h.TASK)
    assert emulator_with_t1.stats()["requests_total"] == 0


def test_each_event_loop_gets_its_own_session(emulator_with_t1):
    settings = h.settings_for("aksk", emulator_with_t1)
    inside = threading.Barrier(2, timeout=30)
    sessions: dict[str, object] = {}
    closed: dict[str, bool] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        async def go() -> None:
            async with AsyncClient(settings, h.FAST) as client:
                await client.get_task_progress(h.TASK)
                sessions[name] = client._shared.session
                # Both loops hold their client open at the same time.
                await asyncio.to_thread(inside.wait)
                await client.get_task_progress(h.TASK)
            closed[name] = sessions[name].closed

        try:
            asyncio.run(go())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sessions["a"] is not sessions["b"]
    assert closed == {"a": True, "b": True}
    assert emulator_with_t1.stats()["requests"] == {"progress 200": 4}
