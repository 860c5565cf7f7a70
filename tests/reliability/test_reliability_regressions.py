"""Small, exact tests of the client fixes the reliability suite led to (the scenarios found them; these pin them).

* Token renewal: a rejected IAM token is renewed once per call; a renewed token rejected again is a permanent
  error that ends the wait (issue 11 B1 replaced the earlier "retryable after renewals" rule, an IAM storm).
* Deep nesting: a reply nested deeper than Python's recursion limit is "not JSON", never a RecursionError.
(The third fix, a trigger that kept running after cancellation, is pinned by
``test_reliability_restart.test_cancelled_triggers_stop_at_once``.)
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_provider_codecheck.core import flow
from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.errors import InvalidResponseError, TokenExpiredError
from airflow_provider_codecheck.core.http import HttpResponse
from airflow_provider_codecheck.core.responses import _find_error, decode
from airflow_provider_codecheck.core.retry import RetryPolicy
from airflow_provider_codecheck.core.settings import settings_from_connection
from airflow_provider_codecheck.core.waiting import Poll, wait_for_scan

EXPIRED = HttpResponse(401, {"x-request-id": "r1"}, b'{"error_code": "CC.00000003", "error_msg": "expired"}')
CTX = flow.Context(monotonic=lambda: 0.0, now=lambda: datetime(2026, 1, 1, tzinfo=UTC), rand=lambda: 0.0)


def _settings(auth_type: str):
    extra = {"auth_type": auth_type, "domain_name": "d"}
    return settings_from_connection("http://127.0.0.1:1", "user", "secret", extra)


def _expire_every_attempt(auth_type: str, max_attempts: int) -> TokenExpiredError:
    policy = RetryPolicy(max_attempts=max_attempts, base_delay=0, max_delay=0, max_elapsed=10)
    gen = flow.perform(ops.get_task_progress("t1"), _settings(auth_type), policy, CTX)
    effect = gen.send(None)
    renewals = 0

    def drive(effect: flow.Effect) -> None:
        nonlocal renewals
        for _ in range(4 * max_attempts):
            if isinstance(effect, flow.NeedToken):
                # fetch=False: drop the rejected token only (a renewed token was rejected too), answer nothing.
                renewals += effect.stale is not None and effect.fetch
                effect = gen.send(f"token-{renewals}" if effect.fetch else None)
            else:
                effect = gen.send(EXPIRED)

    with pytest.raises(TokenExpiredError) as caught:
        drive(effect)
    # One renewal per call at most (issue 11 B1: no IAM storm); a static token cannot be renewed at all.
    expected_attempts = min(2, max_attempts) if auth_type == "password" else 1
    assert caught.value.attempts == expected_attempts
    assert renewals == expected_attempts - 1
    return caught.value


@pytest.mark.parametrize(("auth_type", "max_attempts"), [("password", 1), ("password", 3), ("token", 3)])
def test_a_rejected_token_is_renewed_once_then_the_error_is_permanent(auth_type, max_attempts):
    # A renewed token rejected again means the credentials (or the account) are refused: retrying would only
    # ask IAM for token after token. The wait ends with the error instead.
    assert not _expire_every_attempt(auth_type, max_attempts).retryable
    assert TokenExpiredError("x").retryable is False


def test_wait_ends_on_a_token_rejected_after_renewal():
    error = _expire_every_attempt("password", max_attempts=2)
    wait = wait_for_scan("t1", poll_interval=1.0, deadline=None, clock=lambda: 0.0)
    assert isinstance(next(wait), Poll)
    with pytest.raises(StopIteration) as done:
        wait.send(error)
    event = done.value.value
    assert event["status"] == "error"
    assert event["error_code"] == "CC.00000003"


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000])
@pytest.mark.parametrize("status", [200, 502])
def test_reply_nested_beyond_the_recursion_limit_is_not_json(body, status):
    with pytest.raises(InvalidResponseError if status == 200 else Exception) as caught:
        decode(HttpResponse(status, {}, body))
    assert not isinstance(caught.value, RecursionError)
    assert caught.value.status == status


def test_error_search_does_not_follow_nesting_without_end():
    # Python 3.13's json parses deeper than the interpreter recursion limit; the search must not recurse that far.
    body: dict = {"error_code": "CC.00050010"}
    for _ in range(5000):
        body = {"error": body}
    assert _find_error(body) == (None, None)
    assert _find_error({"error": {"error": {"error_code": "CC.00050010", "error_msg": "no"}}}) == (
        "CC.00050010",
        "no",
    )
