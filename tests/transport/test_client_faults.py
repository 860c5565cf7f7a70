"""Every emulator fault kind through both transports: classification, attempt counts, non-idempotent runs."""

from __future__ import annotations

import time

import client_helpers as h
import pytest

from airflow_provider_codecheck import testing
from airflow_provider_codecheck.core.errors import (
    AuthenticationError,
    CodeCheckError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    TaskRunningError,
    ThrottledError,
    TransientError,
    TransportError,
)
from airflow_provider_codecheck.core.iam import TokenCache
from airflow_provider_codecheck.core.models import TaskStatus
from airflow_provider_codecheck.core.retry import RetryPolicy
from airflow_provider_codecheck.emulator.faults import PERMANENT_KINDS, TRANSIENT_KINDS
from airflow_provider_codecheck.testing import route_requests

SLOW_TIMEOUT = 0.75
"""Client timeout for ``slow`` faults (the emulator holds those replies for SLOW_DELAY)."""
SLOW_DELAY = 5.0
EXHAUST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_elapsed=10)

# What each retried kind becomes once retries run out (exact class, not a parent); the others: TransientError.
FINAL_ERROR = {
    "throttle_429": ThrottledError,
    "reset": TransportError,
    "slow": TransportError,
    "malformed_json": InvalidResponseError,
    "unknown_status": InvalidResponseError,
}
TRANSIENT = {kind: FINAL_ERROR.get(kind, TransientError) for kind in testing.RETRIED_FAULTS}
# Rejected tokens are renewed once, then final (test_client_credentials.py); the after-kinds and running_200
# have their own tests (test_client_gateway.py, the run tests here).
OWN_TESTS = {*testing.TOKEN_FAULTS, *testing.AFTER_FAULTS, *testing.OTHER_FAULTS}

# kind -> (exception class, error_code): "not found" kinds are NotFoundError, the others a permission error.
PERMANENT = {
    kind: (NotFoundError if kind in {"not_found_404", "project_missing_200"} else PermissionDeniedError, code)
    for kind, code in testing.PERMANENT_FAULTS.items()
}


def test_the_matrix_covers_every_fault_kind():
    assert set(TRANSIENT) | OWN_TESTS | set(PERMANENT) == testing.ALL_FAULTS
    assert set(TRANSIENT) <= TRANSIENT_KINDS
    assert set(PERMANENT) == PERMANENT_KINDS


def _fault(kind: str, count: int, route: str = "progress") -> dict:
    # Retry-After 0: this matrix is about counts; Retry-After has its own test.
    return {"kind": kind, "count": count, "routes": [route], "retry_after": 0, "delay_s": SLOW_DELAY}


def _settings(emulator_with_t1, kind: str):
    return h.aksk_settings(emulator_with_t1, timeout=SLOW_TIMEOUT if kind == "slow" else h.TIMEOUT)


def _seen(stats: dict, route: str, kind: str) -> int:
    # A "slow" reply the client gave up on is cancelled in the emulator before it is counted in "requests".
    dropped = stats["faults_injected"].get("slow", 0) if kind == "slow" else 0
    return route_requests(stats, route) + dropped


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_transient_fault_twice_then_success_on_the_third_attempt(emulator_with_t1, transport, kind):
    emulator_with_t1.set_faults([_fault(kind, 2)])
    progress = h.invoke(transport, _settings(emulator_with_t1, kind), "get_task_progress", h.TASK)
    assert progress.status is TaskStatus.SUCCESS
    stats = emulator_with_t1.stats()
    assert stats["faults_injected"] == {kind: 2}
    assert _seen(stats, "progress", kind) == 3, stats["requests"]


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_transient_fault_outlasting_the_policy_raises_its_class(emulator_with_t1, transport, kind):
    emulator_with_t1.set_faults([_fault(kind, EXHAUST.max_attempts + 2)])
    with pytest.raises(CodeCheckError) as caught:
        h.invoke(transport, _settings(emulator_with_t1, kind), "get_task_progress", h.TASK, policy=EXHAUST)
    error = caught.value
    assert type(error) is TRANSIENT[kind], repr(error)
    assert error.attempts == EXHAUST.max_attempts
    assert f"after {EXHAUST.max_attempts} attempts" in str(error)
    assert error.operation
    assert "get_task_progress" in error.operation
    assert _seen(emulator_with_t1.stats(), "progress", kind) == EXHAUST.max_attempts, (
        emulator_with_t1.stats()["requests"]
    )


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_retry_after_is_honoured(emulator_with_t1, transport):
    emulator_with_t1.set_faults(
        [{"kind": "throttle_429", "count": 1, "retry_after": 1, "routes": ["progress"]}]
    )
    tiny = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001, max_elapsed=10)
    settings = h.aksk_settings(emulator_with_t1)
    started = time.monotonic()
    assert (
        h.invoke(transport, settings, "get_task_progress", h.TASK, policy=tiny).status is TaskStatus.SUCCESS
    )
    assert time.monotonic() - started >= 1.0
    assert emulator_with_t1.stats()["requests"] == {"progress 429": 1, "progress 200": 1}


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_retry_after_beyond_max_elapsed_gives_up_at_once(emulator_with_t1, transport):
    emulator_with_t1.set_faults(
        [{"kind": "throttle_429", "count": 1, "retry_after": 30, "routes": ["progress"]}]
    )
    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001, max_elapsed=5)
    started = time.monotonic()
    with pytest.raises(ThrottledError) as caught:
        h.invoke(transport, h.aksk_settings(emulator_with_t1), "get_task_progress", h.TASK, policy=policy)
    assert time.monotonic() - started < 5
    assert caught.value.retry_after == 30
    assert caught.value.attempts == 1


# --- permanent errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("kind", sorted(PERMANENT))
def test_permanent_fault_fails_on_the_first_attempt(emulator_with_t1, transport, kind):
    error_class, code = PERMANENT[kind]
    emulator_with_t1.set_faults([_fault(kind, 5)])
    seen = []
    with pytest.raises(CodeCheckError) as caught:
        h.invoke(
            transport,
            h.aksk_settings(emulator_with_t1),
            "get_task_progress",
            h.TASK,
            observe=seen.append if transport == "sync" else None,
        )
    error = caught.value
    assert type(error) is error_class, repr(error)
    assert error.error_code == code
    assert error.attempts == 1
    assert code in str(error)
    assert error.request_id
    assert error.request_id in str(error)
    if transport == "sync":
        assert error.request_id == seen[-1].headers["X-Request-Id"]
    assert route_requests(emulator_with_t1.stats(), "progress") == 1


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_bad_signature_fails_on_the_first_attempt_with_the_apigw_code(emulator_with_t1, transport):
    settings = h.aksk_settings(emulator_with_t1, sk="not-the-secret-key-000000000000000000000")
    seen = []
    with pytest.raises(AuthenticationError) as caught:
        h.invoke(
            transport,
            settings,
            "get_task_progress",
            h.TASK,
            observe=seen.append if transport == "sync" else None,
        )
    error = caught.value
    assert error.error_code == "APIGW.0301"
    assert error.attempts == 1
    assert "APIGW.0301" in str(error)
    assert error.request_id
    assert error.request_id in str(error)
    if transport == "sync":
        assert error.request_id == seen[-1].headers["X-Request-Id"]
    assert emulator_with_t1.stats()["requests"] == {"progress 401": 1}


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_unknown_task_is_not_found_at_once(emulator_with_t1, transport):
    # What Huawei documents (emulator-notes.md): 200 CC.00050002 "query task detail error".
    with pytest.raises(NotFoundError) as caught:
        h.invoke(transport, h.aksk_settings(emulator_with_t1), "get_defects_summary", "no-such-task")
    assert caught.value.error_code == "CC.00050002"
    assert caught.value.status == 200
    assert caught.value.attempts == 1
    assert emulator_with_t1.stats()["requests"] == {"defects_summary 200": 1}


# --- run_task is not idempotent ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize(
    ("kind", "error_class"),
    [("reset", TransportError), ("slow", TransportError), ("malformed_json", InvalidResponseError)],
)
def test_run_is_not_retried_after_an_ambiguous_failure(emulator_with_t1, transport, kind, error_class):
    emulator_with_t1.set_faults([_fault(kind, 1, route="run")])
    settings = h.aksk_settings(emulator_with_t1, timeout=SLOW_TIMEOUT if kind == "slow" else h.TIMEOUT)
    with pytest.raises(error_class) as caught:
        h.invoke(transport, settings, "run_task", h.TASK)
    error = caught.value
    assert error.maybe_processed is True
    assert error.attempts == 1
    stats = emulator_with_t1.stats()
    assert _seen(stats, "run", kind) == 1, stats["requests"]
    assert stats["faults_injected"] == {kind: 1}


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize(
    ("kind", "error_class", "scan_started"),
    [
        ("gateway_timeout_504", TransientError, True),  # the backend started the scan, then the gateway 504
        ("reset_after", TransportError, True),  # the scan started, then the connection was reset
        ("http_500", TransientError, False),
        ("http_502", TransientError, False),
        ("http_503", TransientError, False),
        ("html_502", TransientError, False),
    ],
)
def test_run_is_never_resent_after_an_unknown_outcome(
    emulator_with_t1, transport, kind, error_class, scan_started
):
    # B3: after a 5xx, a timeout or a reset after sending, the run may have started a scan: one POST only.
    emulator_with_t1.set_faults([_fault(kind, 3, route="run")])
    with pytest.raises(error_class) as caught:
        h.invoke(transport, h.aksk_settings(emulator_with_t1), "run_task", h.TASK)
    error = caught.value
    assert error.maybe_processed is True
    assert error.attempts == 1
    stats = emulator_with_t1.stats()
    assert route_requests(stats, "run") == 1, stats["requests"]
    assert stats["runs"] == ({h.TASK: 1} if scan_started else {}), stats["runs"]


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_run_answered_task_running_is_raised_not_retried(emulator_with_t1, transport):
    # B3: retrying a 200 CC.00050015 would start a second scan once the first ends: the caller attaches.
    emulator_with_t1.set_faults([_fault("running_200", 3, route="run")])
    with pytest.raises(TaskRunningError) as caught:
        h.invoke(transport, h.aksk_settings(emulator_with_t1), "run_task", h.TASK)
    assert caught.value.error_code == "CC.00050015"
    assert caught.value.attempts == 1
    stats = emulator_with_t1.stats()
    assert route_requests(stats, "run") == 1
    assert stats["runs"] == {}


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("kind", ["throttle_429", "busy_400", "busy_200"])
def test_run_is_retried_after_a_definite_refusal(emulator_with_t1, transport, kind):
    emulator_with_t1.set_faults([_fault(kind, 2, route="run")])
    result = h.invoke(transport, h.aksk_settings(emulator_with_t1), "run_task", h.TASK)
    assert emulator_with_t1.get_task(h.TASK)["last_exec_id"] == result.exec_id
    stats = emulator_with_t1.stats()
    assert route_requests(stats, "run") == 3
    assert stats["runs"] == {h.TASK: 1}, "exactly one scan was started"


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_run_of_a_running_task_is_task_running_at_once(emulator_with_t1, transport):
    emulator_with_t1.add_task(task_id=h.TASK, running=True, duration_s=60)
    with pytest.raises(TaskRunningError) as caught:
        h.invoke(transport, h.aksk_settings(emulator_with_t1), "run_task", h.TASK, policy=EXHAUST)
    assert caught.value.error_code == "CC.00050015"
    assert caught.value.attempts == 1
    assert emulator_with_t1.stats()["requests"] == {"run 200": 1}


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_stop_is_idempotent_and_retried_after_reset(emulator_with_t1, transport):
    emulator_with_t1.set_faults([_fault("reset", 2, route="stop")])
    assert h.invoke(transport, h.aksk_settings(emulator_with_t1), "stop_task", h.TASK) is None
    assert emulator_with_t1.stats()["requests"] == {"stop reset": 2, "stop 200": 1}


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_iam_faults_are_retried_like_any_call(emulator_with_t1, transport):
    emulator_with_t1.set_faults([_fault("http_503", 2, route="iam")])
    cache = TokenCache()
    assert h.invoke(
        transport, h.password_settings(emulator_with_t1), "get_task_progress", h.TASK, cache=cache
    )
    stats = emulator_with_t1.stats()
    assert stats["requests"] == {"iam 503": 2, "iam 201": 1, "progress 200": 1}
