"""The emulator seen by aiohttp clients (what the deferrable trigger uses): concurrency and connection faults."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest


async def test_concurrent_clients_each_get_their_own_connection(emulator):
    emulator.add_task(task_id="t1", initial_status=2)
    headers = {"X-Auth-Token": emulator.issue_token()}

    async def poll_twice() -> list[int]:
        async with aiohttp.ClientSession(emulator.base_url, headers=headers) as session:
            statuses = []
            for _ in range(2):
                async with session.get("/v2/tasks/t1/progress") as response:
                    statuses.append((await response.json())["task_status"])
            return statuses

    results = await asyncio.gather(*(poll_twice() for _ in range(50)))
    assert results == [[2, 2]] * 50
    stats = emulator.stats()
    assert stats["connections"] == 50
    assert stats["requests"] == {"progress 200": 100}


async def test_reset_is_a_disconnect_for_aiohttp(emulator):
    """aiohttp (3.14) silently retries an idempotent request once after a disconnect (RFC 9112), so one reset
    is invisible on GET but not on POST; two resets in a row surface on GET too."""
    emulator.add_task(task_id="t1", initial_status=2)
    headers = {"X-Auth-Token": emulator.issue_token()}
    async with aiohttp.ClientSession(emulator.base_url, headers=headers) as session:
        emulator.set_faults([{"kind": "reset", "count": 1}])
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            async with session.post("/v2/tasks/t1/run"):
                pass
        emulator.set_faults([{"kind": "reset", "count": 2}])
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            async with session.get("/v2/tasks/t1/progress"):
                pass
        emulator.set_faults([{"kind": "reset", "count": 1}])
        async with session.get("/v2/tasks/t1/progress") as response:
            assert response.status == 200, "the single reset was retried away by aiohttp"
    stats = emulator.stats()
    assert stats["requests"] == {"run reset": 1, "progress reset": 3, "progress 200": 1}
    assert stats["runs"] == {}


async def test_slow_is_a_timeout_for_aiohttp(emulator):
    emulator.add_task(task_id="t1", initial_status=2)
    emulator.set_faults([{"kind": "slow", "count": 1, "delay_s": 5}])
    headers = {"X-Auth-Token": emulator.issue_token()}
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(emulator.base_url, headers=headers, timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.get("/v2/tasks/t1/progress"):
                pass
