"""IAM tokens: refresh on expiry, static tokens that expire, the cache's margin, single-flight fetching."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import client_helpers as h
import pytest

from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.core.errors import AuthenticationError, TokenExpiredError
from airflow_provider_codecheck.core.iam import TokenCache
from airflow_provider_codecheck.core.models import IamToken, TaskStatus
from airflow_provider_codecheck.emulator.server import EmulatorServer
from airflow_provider_codecheck.transport.aio import AsyncClient
from airflow_provider_codecheck.transport.sync import SyncClient

# --- refresh of IAM password tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_token_expired_on_the_server_is_refreshed_with_exactly_one_iam_call(emulator_with_t1, transport):
    settings = h.password_settings(emulator_with_t1)
    cache = TokenCache()
    assert (
        h.invoke(transport, settings, "get_task_progress", h.TASK, cache=cache).status is TaskStatus.SUCCESS
    )
    first = emulator_with_t1.stats()
    assert first["iam_tokens_issued"] == 1
    emulator_with_t1.expire_tokens()
    assert (
        h.invoke(transport, settings, "get_task_progress", h.TASK, cache=cache).status is TaskStatus.SUCCESS
    )
    stats = emulator_with_t1.stats()
    assert stats["iam_tokens_issued"] == 2, "exactly one extra IAM call"
    assert stats["requests"] == {"iam 201": 2, "progress 200": 2, "progress 401": 1}
    # The new token is cached: a third call needs no IAM call.
    h.invoke(transport, settings, "get_task_progress", h.TASK, cache=cache)
    assert emulator_with_t1.stats()["iam_tokens_issued"] == 2


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_token_expiring_mid_sequence_fault_is_refreshed(emulator_with_t1, transport):
    settings = h.password_settings(emulator_with_t1)
    cache = TokenCache()
    h.invoke(transport, settings, "get_defects_summary", h.TASK, cache=cache)
    emulator_with_t1.set_faults([{"kind": "token_expired", "count": 1, "routes": ["progress"]}])
    assert (
        h.invoke(transport, settings, "get_task_progress", h.TASK, cache=cache).status is TaskStatus.SUCCESS
    )
    stats = emulator_with_t1.stats()
    assert stats["iam_tokens_issued"] == 2
    assert stats["requests"]["progress 401"] == 1
    assert stats["requests"]["progress 200"] == 1


@pytest.fixture(scope="module")
def near_expiry_emulator():
    """IAM tokens that, by their expires_at, have 5 s of their 100 s life left: inside the refresh margin."""

    def wall_clock() -> datetime:
        return datetime.now(UTC) - timedelta(seconds=95)

    with EmulatorServer("127.0.0.1", 0, token_lifetime_s=100.0, wall_clock=wall_clock) as server:
        yield server


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_token_inside_the_refresh_margin_is_replaced_before_use(near_expiry_emulator, transport):
    emulator_with_t1 = near_expiry_emulator
    emulator_with_t1.reset()
    emulator_with_t1.add_task(task_id=h.TASK, initial_status=2)
    settings = h.password_settings(emulator_with_t1)
    cache = TokenCache()
    h.invoke(transport, settings, "get_task_progress", h.TASK, cache=cache)
    h.invoke(transport, settings, "get_task_progress", h.TASK, cache=cache)
    stats = emulator_with_t1.stats()
    # Proactive: the client never sent the stale token, so the service never answered 401.
    assert stats["iam_tokens_issued"] == 2
    assert stats["requests"] == {"iam 201": 2, "progress 200": 2}


# --- static tokens --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_expired_static_token_fails_without_retry_storm(emulator_with_t1, transport):
    settings = h.token_settings(emulator_with_t1, emulator_with_t1.issue_token(lifetime_s=3600))
    assert h.invoke(transport, settings, "get_task_progress", h.TASK).status is TaskStatus.SUCCESS
    emulator_with_t1.expire_tokens()
    error = h.failure(TokenExpiredError, transport, settings, "get_task_progress", h.TASK)
    assert isinstance(error, AuthenticationError)
    assert error.error_code == "CC.00000003"
    assert error.status == 401
    assert error.attempts == 1
    assert "CC.00000003" in str(error)
    stats = emulator_with_t1.stats()
    assert stats["requests"] == {"progress 200": 1, "progress 401": 1}
    assert stats["iam_tokens_issued"] == 0


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_token_expired_fault_with_static_token_is_final(emulator_with_t1, transport):
    settings = h.token_settings(emulator_with_t1, emulator_with_t1.issue_token())
    emulator_with_t1.set_faults([{"kind": "token_expired", "count": 1}])
    with pytest.raises(TokenExpiredError):
        h.invoke(transport, settings, "get_defects_statistic", h.TASK)
    assert emulator_with_t1.stats()["requests_total"] == 1


# --- TokenCache.fresh (pure) ------------------------------------------------------------------------------


def _key(user: str = "u") -> iam.CacheKey:
    return ("https://iam.example", "d", user, "cn-north-4", "digest")


@pytest.mark.parametrize(
    ("issued", "expires", "now", "fresh"),
    [
        # 24 h token: margin capped at 15 minutes.
        (0.0, 86400.0, 0.0, True),
        (0.0, 86400.0, 86400.0 - 900.001, True),
        (0.0, 86400.0, 86400.0 - 900.0, False),
        (0.0, 86400.0, 86400.0, False),
        (0.0, 86400.0, 90000.0, False),
        # 100 s token: margin is a tenth of its life.
        (1000.0, 1100.0, 1089.999, True),
        (1000.0, 1100.0, 1090.0, False),
        # 1 h token: a tenth (360 s) is below the cap.
        (0.0, 3600.0, 3239.0, True),
        (0.0, 3600.0, 3240.0, False),
        # Zero or negative life: no margin, fresh strictly before expiry.
        (500.0, 500.0, 499.0, True),
        (500.0, 500.0, 500.0, False),
        (600.0, 500.0, 499.0, True),
    ],
)
def test_token_cache_fresh_margin(issued, expires, now, fresh):
    cache = TokenCache()
    token = IamToken(token="tok", expires_at=expires, issued_at=issued)
    cache.store(_key(), token)
    assert (cache.fresh(_key(), now) is token) is fresh


def test_token_cache_misses_and_invalidation():
    cache = TokenCache()
    assert cache.fresh(_key(), 0.0) is None
    cache.store(_key(), IamToken("a", expires_at=100.0, issued_at=0.0))
    assert cache.fresh(_key("other"), 0.0) is None
    cache.invalidate(_key(), "not-the-cached-one")  # someone else already refreshed: keep theirs
    assert cache.fresh(_key(), 0.0).token == "a"
    cache.invalidate(_key(), "a")
    assert cache.fresh(_key(), 0.0) is None
    cache.store(_key(), IamToken("b", expires_at=100.0, issued_at=0.0))
    cache.invalidate(_key(), None)
    assert cache.fresh(_key(), 0.0) is None
    cache.invalidate(_key(), None)  # nothing cached: no error
    cache.store(_key(), IamToken("c", expires_at=100.0, issued_at=0.0))
    cache.clear()
    assert cache.fresh(_key(), 0.0) is None


def test_cache_key_separates_passwords_without_holding_them():
    from airflow_provider_codecheck.core.settings import PasswordAuth

    one = iam.cache_key(PasswordAuth("d", "u", "secret-one", "cn-north-4"), "https://iam")
    two = iam.cache_key(PasswordAuth("d", "u", "secret-two", "cn-north-4"), "https://iam")
    assert one != two
    assert "secret-one" not in repr(one)


# --- single-flight ---------------------------------------------------------------------------------------------


def _assert_one_token_served_100_polls(emulator: EmulatorServer) -> None:
    stats = emulator.stats()
    assert stats["iam_tokens_issued"] == 1
    assert stats["requests"] == {"iam 201": 1, "progress 200": 100}


def test_single_flight_across_100_threads(emulator_with_t1):
    settings = h.password_settings(emulator_with_t1)
    cache = TokenCache()
    results = h.progress_from_threads(settings, 100, cache)
    assert results == [TaskStatus.SUCCESS] * 100
    _assert_one_token_served_100_polls(emulator_with_t1)


async def test_single_flight_across_100_tasks(emulator_with_t1):
    settings = h.password_settings(emulator_with_t1)
    cache = TokenCache()
    async with AsyncClient(settings, h.FAST, token_cache=cache) as client:
        statuses = await asyncio.gather(*(client.get_task_progress(h.TASK) for _ in range(100)))
    assert [p.status for p in statuses] == [TaskStatus.SUCCESS] * 100
    _assert_one_token_served_100_polls(emulator_with_t1)


async def test_single_flight_across_100_clients_on_one_loop(emulator_with_t1):
    settings = h.password_settings(emulator_with_t1)
    cache = TokenCache()

    async def one() -> TaskStatus:
        async with AsyncClient(settings, h.FAST, token_cache=cache) as client:
            return (await client.get_task_progress(h.TASK)).status

    assert await asyncio.gather(*(one() for _ in range(100))) == [TaskStatus.SUCCESS] * 100
    assert emulator_with_t1.stats()["iam_tokens_issued"] == 1


def test_single_flight_with_the_process_wide_cache(emulator_with_t1):
    iam.TOKEN_CACHE.clear()
    settings = h.password_settings(emulator_with_t1)
    barrier = threading.Barrier(20)

    def work() -> None:
        client = SyncClient(settings, h.FAST)
        barrier.wait(timeout=30)
        client.get_task_progress(h.TASK)
        client.close()

    threads = [threading.Thread(target=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert emulator_with_t1.stats()["requests"] == {"iam 201": 1, "progress 200": 20}
