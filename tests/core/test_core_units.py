"""Pure unit tests of the sans-I/O core: no mocks, no sockets, explicit clocks and randomness."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_codecheck.core import flow, iam
from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.errors import (
    AuthenticationError,
    BadRequestError,
    CodeCheckError,
    ConnectionConfigError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    ServiceError,
    TaskRunningError,
    ThrottledError,
    TokenExpiredError,
    TransientError,
    TransportError,
    classify,
)
from airflow_provider_codecheck.core.http import HttpResponse, TransportFailure
from airflow_provider_codecheck.core.models import TaskProgress, TaskStatus
from airflow_provider_codecheck.core.responses import decode, parse_retry_after
from airflow_provider_codecheck.core.retry import RetryPolicy
from airflow_provider_codecheck.core.settings import (
    AkSkAuth,
    PasswordAuth,
    TokenAuth,
    console_url,
    settings_from_connection,
)
from airflow_provider_codecheck.core.waiting import (
    Pause,
    Poll,
    Report,
    make_event,
    validate_event,
    wait_for_scan,
)


def reply(status: int, body: Any = b"", headers: dict[str, str] | None = None) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, {"x-request-id": "req-42", **(headers or {})}, raw)


# --- responses.decode --------------------------------------------------------------------------------------


TOP_LEVEL_ERRORS = [
    {"error_code": "CC.00050010", "error_msg": "no permission"},
    {"errorCode": "CC.00050010", "errorMsg": "no permission"},
]
ELSEWHERE_ERRORS = [
    {"code": "CC.00050010", "message": "no permission"},
    {"result": {"detail": {"error_code": "CC.00050010", "error_msg": "no permission"}}},
    {"status": "x", "error": {"errorCode": "CC.00050010", "errorMsg": "no permission"}},
]


@pytest.mark.parametrize(
    ("body", "status"),
    [(body, 403) for body in TOP_LEVEL_ERRORS + ELSEWHERE_ERRORS]
    + [(body, 200) for body in TOP_LEVEL_ERRORS],
)
def test_decode_finds_the_error_wherever_the_service_puts_it(body, status):
    with pytest.raises(PermissionDeniedError) as caught:
        decode(reply(status, body))
    error = caught.value
    assert (error.error_code, error.error_msg, error.status) == ("CC.00050010", "no permission", status)
    assert error.request_id == "req-42"
    assert "CC.00050010" in str(error)
    assert "req-42" in str(error)


@pytest.mark.parametrize("body", ELSEWHERE_ERRORS)
def test_decode_of_a_2xx_ignores_nested_or_code_message_objects(body):
    # B6: the SDK parses errors only on status >= 400; with 200 only a top-level error_code is an error.
    assert decode(reply(200, body)) == body


def test_decode_of_a_valid_answer_with_a_nested_code_message_object():
    body = {
        "task_status": 2,
        "progress": {"ratio": "100%", "info": "success"},
        "extension": {"code": "CC.1", "message": "not an error"},
        "meta": {"deep": {"errorCode": "X.1", "errorMsg": "still data"}},
    }
    assert ops.parse_progress(decode(reply(200, body))).status is TaskStatus.SUCCESS


def test_decode_first_matching_key_pair_wins():
    body = {"code": "CC.00050013", "message": "b", "error_code": "CC.00050015", "error_msg": "a"}
    with pytest.raises(TaskRunningError):
        decode(reply(200, body))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error_code": "CC.00050015", "error_msg": "task is running"}, TaskRunningError),
        ({"error_code": "CC.00050012", "error_msg": "retry later"}, TransientError),
        ({"error_code": "CC.00050013", "error_msg": "project not exist"}, NotFoundError),
        ({"error_code": "CC.00050000", "error_msg": "parameters not valid"}, BadRequestError),
        ({"error_code": "CC.00050005", "error_msg": "create task error"}, ServiceError),
        ({"error_code": "CC.00050007", "error_msg": "IAM authentication failed"}, AuthenticationError),
    ],
)
def test_decode_raises_for_errors_sent_with_http_200(body, expected):
    with pytest.raises(CodeCheckError) as caught:
        decode(reply(200, body))
    assert type(caught.value) is expected
    assert caught.value.status == 200


@pytest.mark.parametrize("ok_body", [{"code": 0, "message": "ok", "x": 1}, {"code": "0"}, {"error_code": ""}])
def test_decode_ignores_zero_and_empty_codes(ok_body):
    assert decode(reply(200, ok_body)) == ok_body


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "CC.00000003", TokenExpiredError),
        (401, "APIGW.0301", AuthenticationError),
        (401, "APIGW.0303", AuthenticationError),
        (403, "APIGW.0302", PermissionDeniedError),
        (429, "APIGW.0308", ThrottledError),
        (429, "APIG.0308", ThrottledError),
        (401, "APIG.0301", AuthenticationError),
        (401, "APIG.0307", TokenExpiredError),
        (401, "APIGW.0307", TokenExpiredError),
        (200, "CC.00050002", NotFoundError),
        (400, "CC.00000000", TransientError),
        (500, "APIGW.0500", TransientError),
        (404, "CC.00000404", NotFoundError),
        (401, None, AuthenticationError),
        (403, None, PermissionDeniedError),
        (404, None, NotFoundError),
        (409, None, BadRequestError),
        (429, None, ThrottledError),
        (503, None, TransientError),
        (200, "CC.99999999", ServiceError),
    ],
)
def test_classify(status, code, expected):
    error = classify(status, code, "msg", "rid")
    assert type(error) is expected
    assert error.retryable is issubclass(expected, TransientError)


def test_decode_html_502_is_transient_with_a_readable_snippet():
    html = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
    with pytest.raises(TransientError) as caught:
        decode(reply(502, html, {"content-type": "text/html"}))
    error = caught.value
    assert type(error) is TransientError
    assert error.status == 502
    assert error.request_id == "req-42"
    assert "502 Bad Gateway" in error.message
    assert "<" not in error.message
    assert "text/html" in error.message


def test_decode_html_with_a_client_status_is_classified_by_status():
    with pytest.raises(PermissionDeniedError):
        decode(reply(403, b"<html>Forbidden</html>", {"content-type": "text/html"}))


def test_decode_non_json_200_is_invalid():
    with pytest.raises(InvalidResponseError) as caught:
        decode(reply(200, b'{"task_status": 0, "progress": {"ratio": "4'))
    assert caught.value.status == 200
    assert caught.value.request_id == "req-42"


def test_decode_long_garbage_is_truncated():
    with pytest.raises(InvalidResponseError) as caught:
        decode(reply(200, b"x" * 5000))
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("body", [b"", b"   \r\n"])
def test_decode_empty_body(body):
    assert decode(reply(200, body)) == {}
    assert decode(reply(204, body)) == {}
    with pytest.raises(TransientError):
        decode(reply(503, body))
    with pytest.raises(NotFoundError) as caught:
        decode(reply(404, body))
    assert caught.value.error_code is None
    assert "HTTP 404" in str(caught.value)


def test_decode_non_utf8_body():
    with pytest.raises(InvalidResponseError):
        decode(reply(200, b"\xff\xfe\xfa"))


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), ("0.5", 0.5), ("-1", None), ("soon", None)])
def test_decode_retry_after(header, expected):
    with pytest.raises(ThrottledError) as caught:
        decode(reply(429, {"error_code": "APIGW.0308", "error_msg": "throttled"}, {"retry-after": header}))
    assert caught.value.retry_after == expected


RA_NOW = datetime(2026, 12, 1, 5, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 7 ", 7.0),
        ("Tue, 01 Dec 2026 05:00:30 GMT", 30.0),  # IMF-fixdate
        ("Tuesday, 01-Dec-26 05:00:30 GMT", 30.0),  # obsolete RFC 850
        ("Tue Dec  1 05:00:30 2026", 30.0),  # obsolete asctime
        ("Tue, 01 Dec 2026 04:59:00 GMT", 0.0),  # in the past: retry now, never negative
        ("Tue, 32 Dec 2026 05:00:30 GMT", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after_both_forms(header, expected):
    assert parse_retry_after(header, RA_NOW) == expected


@pytest.mark.parametrize("code", ["APIG.0308", "APIGW.0308"])
def test_decode_http_date_retry_after_is_measured_from_the_given_now(code):
    body = {"error_code": code, "error_msg": "The throttling threshold has been reached"}
    with pytest.raises(ThrottledError) as caught:
        decode(reply(429, body, {"retry-after": "Tue, 01 Dec 2026 05:00:12 GMT"}), RA_NOW)
    assert caught.value.retry_after == 12.0
    assert caught.value.error_code == code


def test_perform_waits_for_an_http_date_retry_after_then_gives_up_when_it_exceeds_the_budget():
    policy = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.01, max_elapsed=60)
    date = "Sat, 28 Nov 2026 12:00:20 GMT"  # NOW + 20 s
    gen = flow.perform(ops.get_task_progress("t1"), settings_of("aksk"), policy, ctx(1.0))
    gen.send(None)
    throttled = reply(429, {"error_code": "APIG.0308", "error_msg": "throttled"}, {"retry-after": date})
    assert gen.send(throttled) == flow.Sleep(20.0)
    gen.send(None)
    late = "Sat, 28 Nov 2026 12:05:00 GMT"  # 300 s: beyond max_elapsed, give up now with the server's wait
    with pytest.raises(ThrottledError) as caught:
        gen.send(reply(429, {"error_code": "APIGW.0308"}, {"retry-after": late}))
    assert caught.value.retry_after == 300.0
    assert caught.value.attempts == 2


def test_decode_returns_non_object_json_for_the_parser_to_judge():
    assert decode(reply(200, [1, 2])) == [1, 2]
    with pytest.raises(InvalidResponseError):
        ops.parse_progress([1, 2])


# --- operations parsers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("50%", 50),
        ("0%", 0),
        ("100%", 100),
        (" 7 % ", 7),
        ("12.5%", 12),
        ("42", 42),
        (42, 42),
        (None, None),
        ("", None),
    ],
)
def test_parse_ratio(value, expected):
    assert ops.parse_ratio(value) == expected


@pytest.mark.parametrize("value", ["abc", "N/A", "101%", "-5%", "5%%", "1e2%", [], {}, True, "50% done"])
def test_parse_ratio_of_an_odd_value_is_none(value):
    # B6: the ratio is informative only; an odd one never turns a valid verdict into an error.
    assert ops.parse_ratio(value) is None


@pytest.mark.parametrize(
    "body",
    [
        {"task_status": 2, "progress": {"ratio": "N/A", "info": "success"}},
        {"task_status": 2, "progress": {"ratio": {"v": 1}}},
        {"task_status": 2, "progress": {"info": "success"}},
        {"task_status": 2, "progress": "100%"},
        {"task_status": 2, "progress": None},
        {"task_status": 2},
        {"task_status": 2, "progress": {"ratio": "100%", "info": {"odd": 1}}, "extra": [1, {"code": "x"}]},
    ],
)
def test_parse_progress_ignores_fields_it_does_not_need(body):
    progress = ops.parse_progress(body)
    assert progress.status is TaskStatus.SUCCESS
    assert progress.raw == body  # the raw answer (and its odd ratio) stays available


def test_parse_progress_absent_task_status_is_never_checked():
    # The service omits null fields (SDK: an absent key reads as None = "never checked").
    assert ops.parse_progress({}).status is TaskStatus.NOT_STARTED
    assert ops.parse_progress({"progress": {"ratio": "50%"}}).status is TaskStatus.NOT_STARTED


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        (None, TaskStatus.NOT_STARTED),
        (0, TaskStatus.CHECKING),
        (1, TaskStatus.FAILED),
        (2, TaskStatus.SUCCESS),
        (3, TaskStatus.STOPPED),
    ],
)
def test_parse_progress_statuses(wire, status):
    progress = ops.parse_progress({"task_status": wire, "progress": {"ratio": None, "info": None}})
    assert progress.status is status
    assert progress.status.wire == wire
    assert progress.status.is_terminal is (wire in (1, 2, 3))


def test_parse_progress_fields():
    progress = ops.parse_progress({"task_status": 0, "progress": {"ratio": "50%", "info": "running"}})
    assert (progress.ratio, progress.info) == (50, "running")
    assert ops.parse_progress({"task_status": None}).ratio is None
    assert ops.parse_progress({"task_status": 1, "progress": None}).info is None


@pytest.mark.parametrize(
    "body",
    [
        {"task_status": 7},
        {"task_status": -1},
        {"task_status": "2"},
        {"task_status": True},
        {"task_status": False},
        {"task_status": 2.0},
        {"task_status": [2]},
        {"task_status": {"v": 2}},
        [],
        "ok",
        None,
    ],
)
def test_parse_progress_rejects(body):
    with pytest.raises(InvalidResponseError):
        ops.parse_progress(body)


def test_parse_run():
    assert ops.parse_run({"exec_id": "e1"}).exec_id == "e1"
    for body in ({}, {"exec_id": ""}, {"exec_id": 5}, {"exec_id": None}, [], None):
        with pytest.raises(InvalidResponseError):
            ops.parse_run(body)


def test_parse_defects_summary():
    summary = ops.parse_defects_summary(
        {
            "critical_count": "1",
            "major_count": 2,
            "minor_count": None,
            "issue_count": "3",
            "code_quality": "97.5",
        }
    )
    assert summary.counts == {"critical": 1, "major": 2, "minor": 0, "suggestion": 0}
    assert (summary.issue_count, summary.code_quality, summary.last_exec_time) == (3, 97.5, None)
    assert ops.parse_defects_summary({"code_quality": ""}).code_quality is None


@pytest.mark.parametrize(
    "body",
    [
        {"critical_count": "many"},
        {"issue_count": []},
        {"code_quality": "good"},
        {"code_quality": [1]},
        {"major_count": float("inf")},
        {"issue_count": float("nan")},
        {"code_quality": 10**400},
        [],
    ],
)
def test_parse_defects_summary_rejects(body):
    with pytest.raises(InvalidResponseError):
        ops.parse_defects_summary(body)


def test_parse_defects_statistic():
    stat = ops.parse_defects_statistic({"severity": {"critical": 2, "major": "1"}, "status": None})
    assert stat.severity == {"critical": 2, "major": 1, "minor": 0, "suggestion": 0}
    assert stat.status == {"unresolved": 0, "resolved": 0, "dismissed": 0}
    for body in (
        {"severity": [1]},
        {"status": "x"},
        {"severity": {"minor": "x"}},
        {"severity": {"minor": float("inf")}},
    ):
        with pytest.raises(InvalidResponseError):
            ops.parse_defects_statistic(body)


def test_operations_calls():
    assert ops.get_task_progress("t1").call.path == "/v2/tasks/t1/progress"
    assert ops.get_task_progress("t1", "j1").call.query == (("job_id", "j1"),)
    run = ops.run_task("t1", {"git_branch": "dev"}).call
    assert (run.method, run.idempotent, run.body) == ("POST", False, {"git_branch": "dev"})
    assert ops.stop_task("t1").call.idempotent is True
    assert ops.stop_task("t1").parse({}) is None


# --- retry policy ----------------------------------------------------------------------------------------------


def transient(retry_after: float | None = None, maybe_processed: bool = False) -> CodeCheckError:
    error = TransientError("busy", retry_after=retry_after)
    error.maybe_processed = maybe_processed
    return error


POLICY = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=4.0, max_elapsed=60.0)


@pytest.mark.parametrize(("attempt", "cap"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0)])
def test_next_delay_caps_and_jitter_bounds(attempt, cap):
    assert POLICY.next_delay(transient(), attempt, 0.0, True, lambda: 1.0) == cap
    assert POLICY.next_delay(transient(), attempt, 0.0, True, lambda: 0.0) == 0.0
    assert POLICY.next_delay(transient(), attempt, 0.0, True, lambda: 0.25) == pytest.approx(cap / 4)


def test_next_delay_gives_up_after_max_attempts():
    assert POLICY.next_delay(transient(), 6, 0.0, True, lambda: 1.0) is None
    assert POLICY.next_delay(transient(), 7, 0.0, True, lambda: 1.0) is None


def test_next_delay_never_retries_permanent_errors():
    for error in (NotFoundError("x"), AuthenticationError("x"), TokenExpiredError("x"), BadRequestError("x")):
        assert POLICY.next_delay(error, 1, 0.0, True, lambda: 1.0) is None


def test_next_delay_honours_retry_after():
    assert POLICY.next_delay(transient(retry_after=3.0), 1, 0.0, True, lambda: 0.01) == 3.0
    # Retry-After is a floor, not a cap: a larger backoff still applies.
    assert POLICY.next_delay(transient(retry_after=0.1), 4, 0.0, True, lambda: 1.0) == 4.0
    # ...and beyond max_delay too: the server knows best.
    assert POLICY.next_delay(transient(retry_after=10.0), 1, 0.0, True, lambda: 1.0) == 10.0


def test_next_delay_respects_max_elapsed():
    assert POLICY.next_delay(transient(), 1, 59.4, True, lambda: 1.0) == 0.5
    assert POLICY.next_delay(transient(), 1, 59.6, True, lambda: 1.0) is None
    assert POLICY.next_delay(transient(retry_after=30.0), 1, 31.0, True, lambda: 0.0) is None


def test_next_delay_non_idempotent():
    ambiguous = transient(maybe_processed=True)
    assert POLICY.next_delay(ambiguous, 1, 0.0, False, lambda: 1.0) is None
    assert POLICY.next_delay(ambiguous, 1, 0.0, True, lambda: 1.0) == 0.5
    assert POLICY.next_delay(transient(), 1, 0.0, False, lambda: 1.0) == 0.5
    # B3: "task is running" is final for a run (a resend would start a second scan after the first ends)...
    assert POLICY.next_delay(TaskRunningError("running"), 1, 0.0, False, lambda: 1.0) is None
    # ...and still retried for idempotent calls.
    assert POLICY.next_delay(TaskRunningError("running"), 1, 0.0, True, lambda: 1.0) == 0.5


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("html", [False, True])
def test_decode_marks_every_5xx_maybe_processed(status, html):
    body = (
        b"<html>Bad Gateway</html>" if html else {"error_code": "APIG.0201", "error_msg": "Backend timeout"}
    )
    with pytest.raises(TransientError) as caught:
        decode(reply(status, body, {"content-type": "text/html"} if html else None))
    assert caught.value.maybe_processed is True
    assert POLICY.next_delay(caught.value, 1, 0.0, False, lambda: 1.0) is None  # run: never resent
    assert POLICY.next_delay(caught.value, 1, 0.0, True, lambda: 1.0) == 0.5  # progress: retried


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, {"error_code": "APIGW.0308"}),
        (400, {"error_code": "CC.00000000"}),
        (200, {"error_code": "CC.00050012"}),
    ],
)
def test_definite_refusals_are_not_maybe_processed(status, body):
    with pytest.raises(TransientError) as caught:
        decode(reply(status, body))
    assert caught.value.maybe_processed is False
    assert POLICY.next_delay(caught.value, 1, 0.0, False, lambda: 1.0) == 0.5


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base_delay": -1}, {"max_delay": -0.1}, {"max_elapsed": -5}]
)
def test_retry_policy_validation(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


# --- flows driven by hand ------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def ctx(rand: float = 1.0) -> flow.Context:
    # The effect sequences of one flow, without the process-wide request budget (tests/core/test_budget.py).
    return flow.Context(monotonic=lambda: 0.0, now=lambda: NOW, rand=lambda: rand, budgets=None)


def settings_of(auth_type: str, **extra: Any):
    login, password = {"token": (None, "tok"), "password": ("u", "pw"), "aksk": ("AK", "SK")}[auth_type]
    extra = {"auth_type": auth_type, "domain_name": "d", **extra}
    return settings_from_connection("https://cc.example", login, password, extra)


def test_perform_retries_then_returns():
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=1.0, max_elapsed=10)
    gen = flow.perform(ops.get_task_progress("t1"), settings_of("token"), policy, ctx(0.5))
    send = gen.send(None)
    assert isinstance(send, flow.Send)
    assert send.request.headers["X-Auth-Token"] == "tok"
    assert send.request.url == "https://cc.example/v2/tasks/t1/progress"
    assert gen.send(reply(503, {"error_code": "APIGW.0503"})) == flow.Sleep(0.5)
    assert isinstance(gen.send(None), flow.Send)
    assert gen.send(TransportFailure("reset", "ConnectionResetError", maybe_processed=True)) == flow.Sleep(
        0.5
    )
    assert isinstance(gen.send(None), flow.Send)
    with pytest.raises(StopIteration) as done:
        gen.send(reply(200, {"task_status": 2, "progress": {"ratio": "100%", "info": "success"}}))
    assert done.value.value.status is TaskStatus.SUCCESS


def test_perform_gives_up_with_attempts_and_operation():
    policy = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0, max_elapsed=10)
    gen = flow.perform(ops.stop_task("t1"), settings_of("aksk"), policy, ctx())
    gen.send(None)
    gen.send(reply(502, b"<html>bad gateway</html>"))
    gen.send(None)
    with pytest.raises(TransientError) as caught:
        gen.send(reply(502, b"<html>bad gateway</html>"))
    assert caught.value.attempts == 2
    assert caught.value.operation == "stop_task POST /v2/tasks/t1/stop"


def test_perform_run_is_not_retried_after_an_unreadable_200():
    gen = flow.perform(ops.run_task("t1"), settings_of("aksk"), POLICY, ctx())
    gen.send(None)
    with pytest.raises(InvalidResponseError) as caught:
        gen.send(reply(200, b"{not json"))
    assert caught.value.maybe_processed is True
    assert caught.value.attempts == 1


def test_perform_password_renews_a_rejected_token_once_then_gives_up_for_good():
    policy = RetryPolicy(max_attempts=5, base_delay=0.0, max_delay=0.0, max_elapsed=10)
    expired = reply(401, {"error_code": "CC.00000003", "error_msg": "expired"})
    gen = flow.perform(ops.get_task_progress("t1"), settings_of("password"), policy, ctx())
    assert gen.send(None) == flow.NeedToken(stale=None)
    assert gen.send("tok-a").request.headers["X-Auth-Token"] == "tok-a"
    assert gen.send(expired) == flow.NeedToken(stale="tok-a")  # drop it, fetch ONE new token
    assert gen.send("tok-b").request.headers["X-Auth-Token"] == "tok-b"
    assert gen.send(expired) == flow.NeedToken(stale="tok-b", fetch=False)  # drop the renewed one too
    with pytest.raises(TokenExpiredError) as caught:
        gen.send(None)
    assert caught.value.attempts == 2
    assert caught.value.retryable is False


@pytest.mark.parametrize("code", ["APIG.0301", "APIGW.0301", "APIG.0307", "APIGW.0307"])
def test_perform_password_renews_on_gateway_token_codes(code):
    rejected = reply(401, {"error_code": code, "error_msg": "Incorrect IAM authentication information"})
    gen = flow.perform(ops.get_task_progress("t1"), settings_of("password"), POLICY, ctx())
    gen.send(None)
    gen.send("tok-a")
    assert gen.send(rejected) == flow.NeedToken(stale="tok-a")
    gen.send("tok-b")
    with pytest.raises(StopIteration):
        gen.send(reply(200, {"task_status": 2}))


def test_perform_password_with_one_attempt_drops_the_rejected_token():
    policy = RetryPolicy(max_attempts=1)
    gen = flow.perform(ops.get_task_progress("t1"), settings_of("password"), policy, ctx())
    gen.send(None)
    gen.send("tok-a")
    assert gen.send(reply(401, {"error_code": "APIGW.0301"})) == flow.NeedToken(stale="tok-a", fetch=False)
    with pytest.raises(AuthenticationError):
        gen.send(None)


def test_perform_static_token_expiry_is_final():
    gen = flow.perform(ops.get_task_progress("t1"), settings_of("token"), POLICY, ctx())
    gen.send(None)
    with pytest.raises(TokenExpiredError) as caught:
        gen.send(reply(401, {"error_code": "CC.00000003", "error_msg": "expired"}))
    assert caught.value.attempts == 1
    assert caught.value.request_id == "req-42"


def test_transport_failures_become_errors():
    tls = flow.transport_error(TransportFailure("tls", "SSLError", False), "https://x/y")
    assert "ca_bundle" in str(tls)
    assert not tls.retryable
    timeout = flow.transport_error(TransportFailure("timeout", "no reply within 1s", True), "https://x/y")
    assert isinstance(timeout, TransportError)
    assert timeout.retryable


def test_fetch_token_reads_the_iam_reply():
    auth = PasswordAuth("d", "u", "pw", "cn-north-4")
    gen = flow.fetch_token(auth, "https://iam.example", settings_of("password"), POLICY, ctx())
    send = gen.send(None)
    assert send.request.url == "https://iam.example/v3/auth/tokens?nocatalog=true"
    body = json.loads(send.request.body)
    assert body["auth"]["scope"] == {"project": {"name": "cn-north-4"}}
    assert "X-Auth-Token" not in send.request.headers
    token_body = {
        "token": {"expires_at": "2026-11-29T12:00:00.000000Z", "issued_at": "2026-11-28T12:00:00.000000Z"}
    }
    with pytest.raises(StopIteration) as done:
        gen.send(reply(201, token_body, {"x-subject-token": "MII-new"}))
    token = done.value.value
    assert token.token == "MII-new"
    assert token.expires_at - token.issued_at == 86400


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (
            401,
            {"error": {"code": 401, "message": "The username or password is wrong."}},
            {},
            AuthenticationError,
        ),
        (201, {"token": {"expires_at": "2026-11-29T12:00:00Z"}}, {}, InvalidResponseError),
        (201, {"nothing": 1}, {"x-subject-token": "MII"}, InvalidResponseError),
        (201, {"token": {"expires_at": 5}}, {"x-subject-token": "MII"}, InvalidResponseError),
        (201, {"token": {"expires_at": "tomorrow"}}, {"x-subject-token": "MII"}, InvalidResponseError),
    ],
)
def test_parse_token_response_errors(status, body, headers, expected):
    auth = PasswordAuth("dom", "usr", "pw-secret", None)
    with pytest.raises(expected) as caught:
        iam.parse_token_response(reply(status, body, headers), auth)
    if expected is AuthenticationError:
        assert "usr" in str(caught.value)
        assert "dom" in str(caught.value)
    assert "pw-secret" not in str(caught.value)


def test_token_call_scopes_to_the_domain_without_a_project():
    body = iam.token_call(PasswordAuth("dom", "usr", "pw", None)).body
    assert body["auth"]["scope"] == {"domain": {"name": "dom"}}


# --- settings ------------------------------------------------------------------------------------------------


def config_error(
    host: Any = "https://cc.example", login: Any = "u", password: Any = "p", **extra: Any
) -> str:
    with pytest.raises(ConnectionConfigError) as caught:
        settings_from_connection(host, login, password, extra)
    assert isinstance(caught.value, ValueError)
    return str(caught.value)


def test_settings_errors_name_the_field():
    assert "'auth_type'" in config_error()
    assert "'auth_type'" in config_error(auth_type="oauth")
    assert "'region'" in config_error(auth_type="token", region="Mars")
    assert "'region'" in config_error(auth_type="token", region="cn_north_4")
    assert "'domain_name'" in config_error(auth_type="password")
    assert "login" in config_error(login=None, auth_type="password", domain_name="d")
    assert "password" in config_error(password="", auth_type="token")
    assert "login" in config_error(login="", auth_type="aksk")
    assert "password" in config_error(password=None, auth_type="aksk")
    assert "host" in config_error(host=None, auth_type="token")
    assert "host" in config_error(host="https://cc.example/v2", auth_type="token")
    assert "host" in config_error(host="ftp://cc.example", auth_type="token")
    assert "'iam_endpoint'" in config_error(auth_type="token", iam_endpoint="https://iam.example/v3")
    assert "'verify'" in config_error(auth_type="token", verify="perhaps")
    assert "'proxy'" in config_error(auth_type="token", proxy="socks5://p:1080")


@pytest.mark.parametrize("timeout", ["soon", [], -1, 0, "0", 600.5, 1e9])
def test_settings_bad_timeout(timeout):
    assert "'timeout'" in config_error(auth_type="token", timeout=timeout)


def test_settings_defaults_and_derivations():
    settings = settings_from_connection(
        None, "u", "p", {"auth_type": "password", "domain_name": "acct", "region": "cn-north-4"}
    )
    assert settings.endpoint == "https://codearts-check.cn-north-4.myhuaweicloud.com"
    assert settings.iam_endpoint == "https://iam.cn-north-4.myhuaweicloud.com"
    assert settings.auth == PasswordAuth(domain="acct", user="u", password="p", project="cn-north-4")
    assert (settings.verify, settings.timeout, settings.proxy) == (True, 30.0, None)
    settings = settings_from_connection(
        "cc.example:8443/", "AK", "SK", {"auth_type": "AKSK", "timeout": "12.5", "verify": "false"}
    )
    assert settings.endpoint == "https://cc.example:8443"
    assert settings.iam_endpoint == "https://iam.myhuaweicloud.com"
    assert settings.auth == AkSkAuth("AK", "SK")
    assert (settings.timeout, settings.verify) == (12.5, False)
    # ca_bundle must name a readable file (checked when the connection is read).
    ca_pem = Path(__file__)  # any readable file will do for the settings
    settings = settings_from_connection(
        "http://127.0.0.1:1", None, "tok", {"auth_type": "token", "verify": False, "ca_bundle": str(ca_pem)}
    )
    assert settings.auth == TokenAuth("tok")
    assert settings.verify == str(ca_pem)
    settings = settings_from_connection(
        "http://h",
        "u",
        "p",
        {"auth_type": "password", "domain_name": "d", "iam_project": "proj", "region": "ap-southeast-3"},
    )
    assert settings.auth.project == "proj"


def test_settings_accept_legacy_prefixed_extras():
    prefix = "extra__huaweicloud_codecheck__"
    settings = settings_from_connection(
        None,
        "u",
        "p",
        {
            f"{prefix}auth_type": "password",
            f"{prefix}domain_name": "legacy-acct",
            f"{prefix}region": "cn-east-3",
            f"{prefix}timeout": "",
            f"{prefix}ca_bundle": "",
            f"{prefix}project_id": "",
        },
    )
    assert settings.auth.domain == "legacy-acct"
    assert settings.region == "cn-east-3"
    assert settings.timeout == 30.0
    assert settings.verify is True
    # A plain key wins over its prefixed twin; an empty plain key does not hide a prefixed value.
    settings = settings_from_connection(
        "http://h",
        "AK",
        "SK",
        {
            f"{prefix}auth_type": "token",
            "auth_type": "aksk",
            "iam_project_id": "",
            f"{prefix}iam_project_id": "p1",
        },
    )
    assert isinstance(settings.auth, AkSkAuth)
    assert settings.auth.project_id == "p1"


def test_console_url():
    settings = settings_from_connection(
        "http://h", None, "t", {"auth_type": "token", "region": "cn-north-4", "project_id": "p" * 32}
    )
    assert console_url(settings, "t1") == (
        f"https://devcloud.cn-north-4.huaweicloud.com/codecheck/project/{'p' * 32}/codecheck/task/t1/detail"
    )
    no_project = settings_from_connection(
        "http://h", None, "t", {"auth_type": "token", "region": "cn-north-4"}
    )
    assert console_url(no_project, "t1") is None
    odd = settings_from_connection(
        "http://h", None, "t", {"auth_type": "token", "console_url_template": "{nope}"}
    )
    assert console_url(odd, "t1") is None


# --- waiting ---------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def progress(wire: int | None, ratio: str | None = None) -> TaskProgress:
    return ops.parse_progress({"task_status": wire, "progress": {"ratio": ratio, "info": None}})


def drive(gen, answers: list[Any], clock: Clock):
    """Run a wait flow: answer polls from ``answers``, let pauses move the clock; return (event, effects)."""
    effects: list[Any] = []
    answer: Any = None
    while True:
        try:
            effect = gen.send(answer)
        except StopIteration as done:
            return done.value, effects
        effects.append(effect)
        answer = None
        if isinstance(effect, Poll):
            answer = answers.pop(0)
        elif isinstance(effect, Pause):
            clock.now += effect.seconds


def polls(effects) -> int:
    return sum(isinstance(e, Poll) for e in effects)


def test_wait_ends_on_the_first_terminal_status_without_stale_window():
    clock = Clock()
    event, effects = drive(
        wait_for_scan("t1", 5.0, None, clock=clock), [progress(0, "10%"), progress(2, "100%")], clock
    )
    assert event["status"] == "success"
    assert (event["task_status"], event["ratio"]) == (2, 100)
    assert polls(effects) == 2
    assert [e.seconds for e in effects if isinstance(e, Pause)] == [5.0]
    validate_event(event)


def test_wait_ignores_a_stale_terminal_status_until_checking_is_seen():
    clock = Clock()
    answers = [progress(2, "100%"), progress(2, "100%"), progress(0, "0%"), progress(1)]
    event, effects = drive(wait_for_scan("t1", 1.0, None, stale_until=1100.0, clock=clock), answers, clock)
    assert event["status"] == "failed"
    assert polls(effects) == 4
    assert clock.now < 1100.0, "ended because checking was seen, not because the window passed"


def test_wait_trusts_a_terminal_status_once_stale_until_passes():
    clock = Clock()
    answers = [progress(3), progress(3), progress(3), progress(3)]
    event, effects = drive(wait_for_scan("t1", 10.0, None, stale_until=1025.0, clock=clock), answers, clock)
    assert event["status"] == "stopped"
    assert polls(effects) == 4  # at 1000, 1010, 1020 still stale; 1030 trusted
    assert clock.now == 1030.0


def test_wait_deadline_gives_a_timeout_event():
    clock = Clock()
    answers = [progress(0, "1%")] * 10
    gen = wait_for_scan("t1", 4.0, 1010.0, exec_id="e1", clock=clock)
    event, effects = drive(gen, answers, clock)
    assert event["status"] == "timeout"
    assert event["exec_id"] == "e1"
    assert [e.timeout for e in effects if isinstance(e, Poll)] == [10.0, 6.0, 2.0]
    assert [e.seconds for e in effects if isinstance(e, Pause)] == [4.0, 4.0, 2.0]
    validate_event(event)


def test_wait_past_deadline_does_not_poll():
    clock = Clock(2000.0)
    event, effects = drive(wait_for_scan("t1", 4.0, 1999.0, clock=clock), [], clock)
    assert event["status"] == "timeout"
    assert effects == []


def test_wait_permanent_error_gives_an_error_event():
    clock = Clock()
    error = classify(200, "CC.00050010", "current user does not have permission", "rid-7")
    event, _ = drive(wait_for_scan("t1", 1.0, None, clock=clock), [progress(0), error], clock)
    assert event["status"] == "error"
    assert (event["error_code"], event["request_id"]) == ("CC.00050010", "rid-7")
    assert "CC.00050010" in event["message"]
    validate_event(event)


def test_wait_transient_errors_keep_waiting():
    clock = Clock()
    answers = [
        TransientError("busy"),
        TaskRunningError("running"),
        TransportError("reset"),
        progress(2, "100%"),
    ]
    event, effects = drive(wait_for_scan("t1", 1.0, None, clock=clock), answers, clock)
    assert event["status"] == "success"
    warnings = [e for e in effects if isinstance(e, Report) and e.level == "warning"]
    assert len(warnings) == 3


def test_wait_reports_only_changes():
    clock = Clock()
    answers = [progress(0, "10%"), progress(0, "10%"), progress(0, "20%"), progress(2, "100%")]
    _, effects = drive(wait_for_scan("t1", 1.0, None, clock=clock), answers, clock)
    infos = [e.message for e in effects if isinstance(e, Report) and e.level == "info"]
    infos = [m for m in infos if "estimated end" not in m]  # the pacing's line (tests/core/test_pacing.py)
    assert len(infos) == 3
    assert "ratio=20%" in infos[1]


def test_wait_rejects_a_driver_bug():
    clock = Clock()
    with pytest.raises(TypeError):
        drive(wait_for_scan("t1", 1.0, None, clock=clock), [{"task_status": 2}], clock)


def test_validate_event():
    good = make_event("success", "t1", "done", progress=progress(2, "100%"))
    assert validate_event(good) is good
    for status in ("timeout", "error"):
        validate_event(make_event(status, "t1", "x"))
    for status, wire in (("failed", 1), ("stopped", 3)):
        validate_event(make_event(status, "t1", "x", progress=progress(wire)))
    bad = [
        None,
        "success",
        [],
        {},
        {"status": "done"},
        {"status": "success"},
        {"status": "success", "task_status": 1},
        {"status": "failed", "task_status": 2},
        {"status": "stopped", "task_status": None},
    ]
    for event in bad:
        with pytest.raises(ValueError):
            validate_event(event)
