"""B1: a credential the service rejects is never reused.

IAM tokens: a rejected token is dropped from the process-wide cache and ONE new token is fetched; a renewed
token rejected again is a permanent AuthenticationError (no IAM storm). Static tokens: a rejection is final.
AK/SK (and IAM passwords): rejected credentials are never sent again by anyone in the process for
``iam.REJECTED_CREDENTIAL_HOLD_S`` (the gateway locks an AK for 5 minutes after 5 failures in a row, for every
caller).
"""

from __future__ import annotations

import asyncio
import threading

import client_helpers as h
import pytest

from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.errors import AuthenticationError, TokenExpiredError
from airflow_provider_codecheck.core.iam import CredentialMemo, TokenCache
from airflow_provider_codecheck.core.models import TaskStatus
from airflow_provider_codecheck.core.settings import AkSkAuth
from airflow_provider_codecheck.emulator import defaults
from airflow_provider_codecheck.transport.aio import AsyncClient
from airflow_provider_codecheck.transport.sync import SyncClient

TOKEN_CODES = ["CC.00000003", "APIG.0301", "APIGW.0301", "APIG.0307", "APIGW.0307"]
WRONG_SK = "not-the-secret-key-000000000000000000000"


def _rejected(code: str, count: int) -> list[dict]:
    return [{"kind": "token_rejected", "code": code, "count": count, "routes": ["progress"]}]


# --- IAM password tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("code", TOKEN_CODES)
def test_rejected_token_is_dropped_and_renewed_once(emulator_with_t1, transport, code):
    settings = h.password_settings(emulator_with_t1)
    h.invoke(transport, settings, "get_defects_summary", h.TASK, cache=iam.TOKEN_CACHE)
    emulator_with_t1.set_faults(_rejected(code, 1))
    progress = h.invoke(transport, settings, "get_task_progress", h.TASK, cache=iam.TOKEN_CACHE)
    assert progress.status is TaskStatus.SUCCESS
    stats = emulator_with_t1.stats()
    assert stats["iam_tokens_issued"] == 2, "one new token for the rejected one"
    assert stats["requests"]["progress 401"] == 1
    # The process-wide cache now holds the new token: the next call needs no IAM call.
    h.invoke(transport, settings, "get_task_progress", h.TASK, cache=iam.TOKEN_CACHE)
    assert emulator_with_t1.stats()["iam_tokens_issued"] == 2


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("code", TOKEN_CODES)
def test_renewed_token_rejected_again_is_permanent_without_an_iam_storm(emulator_with_t1, transport, code):
    settings = h.password_settings(emulator_with_t1)
    emulator_with_t1.set_faults(_rejected(code, 100))
    with pytest.raises(AuthenticationError) as caught:
        h.invoke(transport, settings, "get_task_progress", h.TASK, cache=iam.TOKEN_CACHE)
    error = caught.value
    assert error.error_code == code
    assert error.status == 401
    assert error.retryable is False
    assert error.attempts == 2
    stats = emulator_with_t1.stats()
    assert stats["iam_tokens_issued"] == 2, "the first token and ONE renewal"
    assert stats["requests"]["progress 401"] == 2
    # Neither rejected token stays cached: the next call fetches a new one (one IAM call per call, at most 2).
    _auth, key = SyncClient(settings)._token_key()
    assert iam.TOKEN_CACHE.fresh(key, 0.0) is None


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_revoked_tokens_are_renewed_once_through_the_process_wide_cache(emulator_with_t1, transport):
    settings = h.password_settings(emulator_with_t1)
    h.invoke(transport, settings, "get_task_progress", h.TASK, cache=iam.TOKEN_CACHE)
    emulator_with_t1.revoke_tokens(code="APIGW.0307")  # every token issued so far
    assert h.invoke(transport, settings, "get_task_progress", h.TASK, cache=iam.TOKEN_CACHE)
    stats = emulator_with_t1.stats()
    assert stats["iam_tokens_issued"] == 2
    assert stats["requests"] == {"iam 201": 2, "progress 200": 2, "progress 401": 1}


def _progress_from_20_threads(settings) -> list[object]:
    """Read progress from 20 threads released at once (each its own client); the statuses or the errors."""
    barrier = threading.Barrier(20)
    results: list[object] = []

    def work() -> None:
        client = SyncClient(settings, h.FAST)
        try:
            barrier.wait(timeout=30)
            results.append(client.get_task_progress(h.TASK).status)
        except BaseException as exc:
            results.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_revoked_token_under_20_threads_costs_one_iam_call(emulator_with_t1):
    settings = h.password_settings(emulator_with_t1)
    h.invoke("sync", settings, "get_task_progress", h.TASK, cache=iam.TOKEN_CACHE)
    emulator_with_t1.revoke_tokens()
    results = _progress_from_20_threads(settings)
    assert results == [TaskStatus.SUCCESS] * 20
    assert emulator_with_t1.stats()["iam_tokens_issued"] == 2


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("code", ["APIGW.0301", "APIG.0307", "CC.00000003"])
def test_static_token_rejection_is_permanent(emulator_with_t1, transport, code):
    settings = h.token_settings(emulator_with_t1, emulator_with_t1.issue_token())
    emulator_with_t1.set_faults(_rejected(code, 100))
    with pytest.raises(AuthenticationError) as caught:
        h.invoke(transport, settings, "get_task_progress", h.TASK)
    assert caught.value.error_code == code
    assert caught.value.attempts == 1
    assert caught.value.retryable is False
    stats = emulator_with_t1.stats()
    assert stats["requests_total"] == 1
    assert stats["iam_tokens_issued"] == 0  # issue_token (admin) is not an IAM call


# --- AK/SK ------------------------------------------------------------------------------------------------


def _wrong_sk(emulator_with_t1, sk: str = WRONG_SK):
    return h.aksk_settings(emulator_with_t1, sk=sk)


def test_rejected_aksk_across_20_threads_costs_one_failed_signature(emulator_with_t1):
    settings = _wrong_sk(emulator_with_t1)
    errors = _progress_from_20_threads(settings)
    assert len(errors) == 20
    assert all(isinstance(error, AuthenticationError) for error in errors), errors[:3]
    assert {error.error_code for error in errors} == {"APIGW.0301"}
    stats = emulator_with_t1.stats()
    assert stats["aksk_failures"] == {defaults.ACCESS_KEY: 1}
    assert stats["requests_total"] == 1
    assert not stats["aksk_locked"]


async def test_rejected_aksk_across_20_tasks_costs_one_failed_signature(emulator_with_t1):
    settings = _wrong_sk(emulator_with_t1)

    async def one() -> BaseException | None:
        async with AsyncClient(settings, h.FAST) as client:
            try:
                await client.get_task_progress(h.TASK)
            except AuthenticationError as exc:
                return exc
        return None

    errors = await asyncio.gather(*(one() for _ in range(20)))
    assert all(isinstance(error, AuthenticationError) for error in errors), errors[:3]
    stats = emulator_with_t1.stats()
    assert stats["aksk_failures"] == {defaults.ACCESS_KEY: 1}
    assert stats["requests_total"] == 1


def test_rejection_is_shared_by_threads_and_event_loops_and_a_changed_sk_works_at_once(emulator_with_t1):
    with pytest.raises(AuthenticationError):
        h.invoke("sync", _wrong_sk(emulator_with_t1), "get_task_progress", h.TASK)
    for transport in h.TRANSPORTS:
        for _ in range(5):
            with pytest.raises(AuthenticationError) as caught:
                h.invoke(transport, _wrong_sk(emulator_with_t1), "run_task", h.TASK)
            assert "not sent again" in str(caught.value)
            assert caught.value.attempts == 1
    stats = emulator_with_t1.stats()
    assert stats["aksk_failures"] == {defaults.ACCESS_KEY: 1}
    assert stats["requests_total"] == 1
    assert stats["runs"] == {}
    # The right SK is another key: used at once, in both transports.
    for transport in h.TRANSPORTS:
        assert (
            h.invoke(transport, h.aksk_settings(emulator_with_t1), "get_task_progress", h.TASK).status
            is TaskStatus.SUCCESS
        )
    # A different wrong SK is another key too: it gets its own single probe.
    with pytest.raises(AuthenticationError):
        h.invoke(
            "async",
            _wrong_sk(emulator_with_t1, "another-wrong-secret-key-0000000000000"),
            "get_task_progress",
            h.TASK,
        )
    assert emulator_with_t1.stats()["requests_total"] == 4


def test_rejected_aksk_never_locks_the_account(emulator_with_t1):
    # 30 calls with a wrong SK: the gateway sees one failure, far from its 5-failure lock-out.
    for index in range(30):
        with pytest.raises(AuthenticationError):
            h.invoke(h.TRANSPORTS[index % 2], _wrong_sk(emulator_with_t1), "get_task_progress", h.TASK)
    stats = emulator_with_t1.stats()
    assert stats["aksk_failures"] == {defaults.ACCESS_KEY: 1}
    assert not stats["aksk_locked"]


def test_rejection_message_holds_no_secret(leakcheck_emulator):
    settings = h.aksk_settings(leakcheck_emulator, ak=h.SECRET_AK, sk=WRONG_SK)
    for _ in range(2):
        with pytest.raises(AuthenticationError) as caught:
            h.invoke("sync", settings, "get_task_progress", h.TASK)
        text = f"{caught.value} {caught.value!r} {caught.value.message}"
        for secret in (WRONG_SK, h.SECRET_SK):
            assert secret not in text
    # The memo's keys hold the AK (like a user name) and a digest, never a secret; effects do not show them.
    from airflow_provider_codecheck.core import flow

    send = flow.Send(
        flow.build_request(ops.get_task_progress(h.TASK).call, "http://e", settings, None, flow.utc_now()),
        iam.aksk_key(settings.auth, "http://e"),
    )
    assert h.SECRET_AK not in repr(send)
    assert h.SECRET_SK not in repr(iam.CREDENTIAL_MEMO.__dict__)
    assert WRONG_SK not in repr(iam.CREDENTIAL_MEMO.__dict__)


# --- IAM password rejected by IAM -------------------------------------------------------------------------


def test_wrong_password_across_20_threads_costs_one_iam_call(emulator_with_t1):
    settings = h.password_settings(emulator_with_t1, password="not-the-password")
    errors = _progress_from_20_threads(settings)
    assert len(errors) == 20
    assert all(isinstance(error, AuthenticationError) for error in errors), errors[:3]
    assert sum("not sent again" in str(error) for error in errors) == 19
    stats = emulator_with_t1.stats()
    assert stats["requests"] == {"iam 401": 1}
    assert stats["iam_tokens_issued"] == 0


def test_wrong_password_is_shared_by_both_transports_and_a_fixed_password_works_at_once(emulator_with_t1):
    bad = h.password_settings(emulator_with_t1, password="not-the-password")
    for transport in (*h.TRANSPORTS, *h.TRANSPORTS):
        with pytest.raises(AuthenticationError):
            h.invoke(transport, bad, "get_task_progress", h.TASK, cache=iam.TOKEN_CACHE)
    assert emulator_with_t1.stats()["requests"] == {"iam 401": 1}
    for transport in h.TRANSPORTS:
        good = h.password_settings(emulator_with_t1)
        assert h.invoke(transport, good, "get_task_progress", h.TASK).status is TaskStatus.SUCCESS
    assert emulator_with_t1.stats()["requests"] == {"iam 401": 1, "iam 201": 2, "progress 200": 2}


# --- the memo, pure ---------------------------------------------------------------------------------------


def _reply(status: int):
    from airflow_provider_codecheck.core.http import HttpResponse

    body = b'{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: verify aksk signature fail"}'
    return HttpResponse(status, {"x-request-id": "rid-1"}, body if status == 401 else b"{}")


def test_memo_holds_a_rejection_longer_than_the_lockout_then_lets_one_probe_through():
    memo = CredentialMemo()
    assert memo.hold_s > 300, "longer than the gateway's 5-minute lock-out"
    key = iam.aksk_key(AkSkAuth("AK", "SK"), "https://cc.example")
    assert memo.withheld(key, 0.0) is None
    assert not memo.trusted(key)
    memo.observe(key, _reply(401), 1000.0)
    withheld = memo.withheld(key, 1000.0 + memo.hold_s - 1)
    assert withheld is not None
    error = withheld.error()
    assert (error.error_code, error.request_id, error.status) == ("APIGW.0301", "rid-1", 401)
    assert not error.retryable
    assert memo.withheld(key, 1000.0 + memo.hold_s) is None  # a fixed account recovers without a restart
    memo.observe(key, _reply(200), 2000.0)
    assert memo.trusted(key)
    memo.observe(key, _reply(401), 2001.0)  # a trusted key rejected later (SK rotated) is rejected again
    assert not memo.trusted(key)
    assert memo.withheld(key, 2002.0) is not None


def test_memo_keys_separate_secrets_and_security_tokens_without_holding_them():
    from airflow_provider_codecheck.core.settings import PasswordAuth

    one = iam.password_key(PasswordAuth("d", "u", "secret-one", None), "https://iam")
    assert one != iam.password_key(PasswordAuth("d", "u", "secret-two", None), "https://iam")
    assert one != iam.aksk_key(AkSkAuth("u", "secret-one"), "https://iam")
    assert "secret-one" not in repr(one)
    base = iam.aksk_key(AkSkAuth("AK", "secret-one"), "https://e")
    assert base != iam.aksk_key(AkSkAuth("AK", "secret-two"), "https://e")
    assert base != iam.aksk_key(AkSkAuth("AK", "secret-one", security_token="st"), "https://e")
    assert base != iam.aksk_key(AkSkAuth("AK", "secret-one"), "https://other")
    assert "secret-one" not in repr(base)


def test_transport_failures_teach_the_memo_nothing():
    from airflow_provider_codecheck.core.http import TransportFailure

    memo = CredentialMemo()
    key = iam.aksk_key(AkSkAuth("AK", "SK"), "https://e")
    memo.observe(key, TransportFailure("reset", "x", True), 0.0)
    assert not memo.trusted(key)
    assert memo.withheld(key, 0.0) is None


def test_a_fresh_token_cache_is_used_by_default():
    assert isinstance(iam.TOKEN_CACHE, TokenCache)
    assert TokenExpiredError("x").retryable is False
