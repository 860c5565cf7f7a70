"""The async path reads each connection once per process and TTL (issue 13 item 3), with real Airflow lookups."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from airflow_provider_codecheck.core.errors import AuthenticationError, CodeCheckError
from airflow_provider_codecheck.hooks import codecheck as hook_module
from airflow_provider_codecheck.hooks.codecheck import CONNECTION_CACHE, CONNECTION_CACHE_TTL, CodeCheckHook
from airflow_provider_codecheck.testing import connection_json


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    CONNECTION_CACHE.clear()
    yield
    CONNECTION_CACHE.clear()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(CONNECTION_CACHE, "clock", lambda: now[0])
    return now


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Airflow's own lookup (common-compat get_async_connection) at its use site, counted and passed through."""
    seen: list[str] = []
    real = hook_module.get_async_connection

    async def counting(conn_id: str, hook: Any = None) -> Any:
        seen.append(conn_id)
        await asyncio.sleep(0)  # let the other callers pile up behind the in-flight lookup
        return await real(conn_id, hook)

    monkeypatch.setattr(hook_module, "get_async_connection", counting)
    return seen


async def _many(n: int, conn_id: str = "codecheck_default") -> list[Any]:
    return await asyncio.gather(*(CodeCheckHook(conn_id).aget_settings() for _ in range(n)))


def test_ttl_is_short() -> None:
    assert 30 <= CONNECTION_CACHE_TTL <= 60


def test_concurrent_lookups_share_one(
    default_conn_emulator: Any, lookups: list[str], clock: list[float]
) -> None:
    results = asyncio.run(_many(200))
    assert lookups == ["codecheck_default"]
    assert all(settings is results[0] for settings in results)
    assert results[0].endpoint == default_conn_emulator.base_url

    clock[0] += CONNECTION_CACHE_TTL - 1
    asyncio.run(_many(50))  # another event loop reuses the settings (plain data), still within the TTL
    assert len(lookups) == 1

    clock[0] += 1  # the TTL is over: one more lookup for all of them
    again = asyncio.run(_many(200))
    assert len(lookups) == 2
    assert all(settings is again[0] for settings in again)


def test_errors_are_not_cached(
    default_conn_emulator: Any, lookups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.exceptions import AirflowNotFoundException

    for _ in range(2):
        with pytest.raises(AirflowNotFoundException):
            asyncio.run(_many(20, "codecheck_missing"))
    assert lookups == ["codecheck_missing", "codecheck_missing"]  # one shared lookup per burst, none cached

    monkeypatch.setenv("AIRFLOW_CONN_CODECHECK_MISSING", connection_json(default_conn_emulator.base_url))
    asyncio.run(_many(5, "codecheck_missing"))  # created since: found at once
    assert len(lookups) == 3


def test_fixed_password_is_read_after_an_auth_error(
    default_conn_emulator: Any, lookups: list[str], monkeypatch: pytest.MonkeyPatch, clock: list[float]
) -> None:
    good = connection_json(default_conn_emulator.base_url)
    bad = json.loads(good)
    bad["password"] = "wrong-password"
    monkeypatch.setenv("AIRFLOW_CONN_CODECHECK_DEFAULT", json.dumps(bad))

    async def progress() -> Any:
        async with CodeCheckHook().async_client() as client:
            return await client.get_task_progress("0" * 32)

    with pytest.raises(AuthenticationError) as rejected:
        asyncio.run(progress())
    assert "wrong-password" not in str(rejected.value)
    assert len(lookups) == 1
    assert CONNECTION_CACHE.cached("codecheck_default") is None  # dropped with the rejected settings

    monkeypatch.setenv(
        "AIRFLOW_CONN_CODECHECK_DEFAULT", good
    )  # the user fixes the password, well within the TTL
    with pytest.raises(CodeCheckError) as answered:
        asyncio.run(progress())
    assert not isinstance(answered.value, AuthenticationError)  # authenticated: the unknown task is reported
    assert len(lookups) == 2
    assert CONNECTION_CACHE.cached("codecheck_default") is not None


def test_auth_error_raised_by_the_body_drops_the_entry(
    default_conn_emulator: Any, lookups: list[str]
) -> None:
    async def body() -> None:
        async with CodeCheckHook().async_client():
            raise AuthenticationError("rejected", status=401)

    with pytest.raises(AuthenticationError):
        asyncio.run(body())
    assert CONNECTION_CACHE.cached("codecheck_default") is None
    asyncio.run(_many(3))
    assert len(lookups) == 2


def test_a_fresher_entry_survives_a_late_auth_error(default_conn_emulator: Any, lookups: list[str]) -> None:
    old = asyncio.run(_many(1))[0]
    CONNECTION_CACHE.forget("codecheck_default")
    fresh = asyncio.run(_many(1))[0]
    CONNECTION_CACHE.forget("codecheck_default", old)  # a slow call made with the old settings fails late
    assert CONNECTION_CACHE.cached("codecheck_default") is fresh


def test_a_cancelled_caller_does_not_cancel_the_shared_lookup(
    default_conn_emulator: Any, lookups: list[str]
) -> None:
    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(CodeCheckHook().aget_settings())
        others = [asyncio.ensure_future(CodeCheckHook().aget_settings()) for _ in range(10)]
        await asyncio.sleep(0)
        first.cancel()
        return await asyncio.gather(*others)

    results = asyncio.run(scenario())
    assert len(lookups) == 1
    assert all(settings is results[0] for settings in results)


def test_event_loops_do_not_share_in_flight_lookups(
    default_conn_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two loops (threads) looking up at the same moment each await their own lookup, never the other's."""
    real = hook_module.get_async_connection
    both_in_flight = threading.Barrier(2, timeout=30)
    loops: list[asyncio.AbstractEventLoop] = []

    async def rendezvous(conn_id: str, hook: Any = None) -> Any:
        loops.append(asyncio.get_running_loop())
        await asyncio.to_thread(both_in_flight.wait)  # both lookups are in flight at once
        return await real(conn_id, hook)

    monkeypatch.setattr(hook_module, "get_async_connection", rendezvous)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.extend(asyncio.run(_many(50)))
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(results) == 100
    assert len(loops) == 2  # one lookup per loop, none awaited across loops
    assert loops[0] is not loops[1]


def test_cache_repr_shows_no_secrets(default_conn_emulator: Any) -> None:
    settings = asyncio.run(_many(1))[0]
    from airflow_provider_codecheck.emulator import defaults

    assert defaults.IAM_PASSWORD not in repr(CONNECTION_CACHE)
    assert "codecheck_default" in repr(CONNECTION_CACHE)
    assert settings is CONNECTION_CACHE.cached("codecheck_default")


def test_a_changed_env_connection_is_read_at_once(
    default_conn_emulator: Any, lookups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_many(5))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CODECHECK_DEFAULT", connection_json(default_conn_emulator.base_url, timeout=7)
    )
    changed = asyncio.run(_many(5))
    assert (
        len(lookups) == 2
    )  # a local digest of the variable noticed the change; no lookup was needed to see it
    assert changed[0].timeout == 7
