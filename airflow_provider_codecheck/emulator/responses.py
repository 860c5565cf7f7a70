"""Response bodies: CodeArts ``error_code``/``error_msg`` errors, gateway errors and the answers of faults.

Codes marked "invented" are not documented anywhere we could see; they are plausible gateway codes so that
clients exercise their generic 5xx handling. The README cites the source of every documented one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from airflow_provider_codecheck.emulator.auth import token_rejection
from airflow_provider_codecheck.emulator.faults import ABSENT, Fault


@dataclass
class Reply:
    """The answer of an operation before it is rendered: faults of the ``AFTER_KINDS`` family change it."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300 and isinstance(self.body, dict) and "error_code" not in self.body

    def render(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


def cc_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error_code": code, "error_msg": message, **extra}, status=status)


def gateway_error(status: int, code: str, message: str, request_id: str) -> web.Response:
    """APIG's own errors carry the request id in the body too (reference gateway-and-quotas.md)."""
    return cc_error(status, code, message, request_id=request_id)


def task_not_found(task_id: str) -> web.Response:
    """The invented 404 (fault kind ``not_found_404``, or ``unknown_task="http_404"``): no Huawei page shows it."""
    return cc_error(404, "CC.00000404", f"task {task_id} not found")


# What the service answers for a task id it does not know. The API pages of every task route document only
# 200/400/401, and the error-code table lists CC.00050002 "query task detail error" with HTTP status 200
# (support.huaweicloud.com/api-codecheck/ErrorCode.html); see the README, "Unknown task".
TASK_LOOKUP_FAILED = (200, "CC.00050002", "query task detail error")


def unknown_task_reply() -> Reply:
    status, code, message = TASK_LOOKUP_FAILED
    return Reply(status, {"error_code": code, "error_msg": message})


def unknown_task(task_id: str, mode: str) -> web.Response:
    if mode == "http_404":
        return task_not_found(task_id)
    return unknown_task_reply().render()


def http_date(moment: datetime) -> str:
    """RFC 7231 IMF-fixdate of ``moment``, rounded up to a whole second."""
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return format_datetime(moment, usegmt=True)


def throttled(
    code: str, limit: float, retry_after_s: float | None, form: str | None, now: datetime, request_id: str
) -> web.Response:
    """429 as APIG sends it; ``Retry-After`` as delta-seconds or HTTP-date (None: no header)."""
    message = (
        f"The throttling threshold has been reached: policy user over ratelimit,limit:{limit:g},time:1 second"
    )
    response = gateway_error(429, code, message, request_id)
    if retry_after_s is not None and form is not None:
        if form == "date":
            response.headers["Retry-After"] = http_date(now + timedelta(seconds=retry_after_s))
        else:
            response.headers["Retry-After"] = f"{retry_after_s:g}"
    return response


def whole_seconds(seconds: float) -> int:
    """Delta-seconds must be a non-negative integer (RFC 7231 §7.1.3): round up, at least 1."""
    return max(1, math.ceil(seconds - 1e-9))


# kind -> (HTTP status, error_code, error_msg) for faults answered with a plain CodeArts-style JSON error.
JSON_FAULTS: dict[str, tuple[int, str, str]] = {
    "busy_400": (400, "CC.00000000", "Network busy. Try again later."),
    "busy_200": (200, "CC.00050012", "retry later"),
    "running_200": (200, "CC.00050015", "task is running"),
    "http_500": (500, "APIGW.0500", "Internal server error"),  # invented
    "http_502": (502, "APIGW.0502", "Bad gateway: backend unavailable"),  # invented
    "http_503": (503, "APIGW.0503", "Service unavailable"),  # invented
    "token_expired": (401, "CC.00000003", "Authentication information expired."),
    "forbidden_403": (403, "APIGW.0302", "The IAM user is not authorized to access the API."),
    "no_permission_200": (200, "CC.00050010", "current user does not have permission"),
    "project_missing_200": (200, "CC.00050013", "project not exist"),
}

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

# A progress answer cut off mid-way, as if the gateway lost the end of the body.
MALFORMED_JSON = '{"task_status": 0, "progress": {"ratio": "4'


def fault_response(fault: Fault, task_id: str, request_id: str, now: datetime) -> web.Response:
    """The answer for faults that replace the response (not ``reset``/``slow``, handled by the caller)."""
    if fault.kind in JSON_FAULTS:
        status, code, message = JSON_FAULTS[fault.kind]
        return cc_error(status, code, message)
    if fault.kind == "throttle_429":
        # Sent as given ("3", or "0.3": not RFC 7231 delta-seconds, but fast tests and lenient clients use it).
        return throttled(
            fault.code or "APIGW.0308", 10, fault.retry_after, fault.retry_after_form, now, request_id
        )
    if fault.kind == "token_rejected":
        failure = token_rejection(fault.code or "APIGW.0301")
        return token_rejected_response(failure.error_code, failure.error_msg, request_id)
    if fault.kind == "html_502":
        return web.Response(status=502, text=HTML_502, content_type="text/html")
    if fault.kind == "malformed_json":
        return web.Response(status=200, text=MALFORMED_JSON, content_type="application/json")
    if fault.kind == "unknown_status":
        return web.json_response({"task_status": 7, "progress": {"ratio": None, "info": None}})
    if fault.kind == "not_found_404":
        return task_not_found(task_id)
    raise ValueError(f"fault kind {fault.kind} has no canned response")


def token_rejected_response(code: str, message: str, request_id: str) -> web.Response:
    """401 for a token: gateway codes carry ``request_id`` in the body, CodeArts' ``CC.00000003`` does not."""
    if code.startswith("APIG"):
        return gateway_error(401, code, message, request_id)
    return cc_error(401, code, message)


# --- faults that change a performed operation's answer ---------------------------------------------------


def gateway_timeout(code: str, request_id: str) -> web.Response:
    # APIG's error table: 504 "Backend timeout." (code x.0203 in the APIG/ROMA tables, APIG.0201 in OCR's FAQ).
    return gateway_error(504, code, "Backend timeout.", request_id)


def with_extra_fields(reply: Reply) -> Reply:
    """Unknown top-level fields and nested objects, one of them shaped like an error (``code``/``message``)."""
    if not reply.is_success:
        return reply
    body = dict(reply.body)
    for key, value in list(body.items()):
        if isinstance(value, dict):
            body[key] = {**value, "x_detail": {"stage": "analysis", "nodes": [1, 2]}}
    body.update(
        {
            "extension": {"code": "CC.1", "message": "not an error"},
            "x_trace": {"id": "emulator", "spans": [{"name": "db", "ms": 3}], "empty": {}},
            "x_count": 3,
            "x_flag": True,
            "x_null": None,
            "x_list": ["a", {"error_code": "CC.00000000"}],
        }
    )
    return Reply(reply.status, body, reply.headers)


def with_odd_ratio(reply: Reply, ratio: Any) -> Reply:
    if not reply.is_success or not isinstance(reply.body.get("progress"), dict):
        return reply
    progress = dict(reply.body["progress"])
    if ratio == ABSENT:
        progress.pop("ratio", None)
    else:
        progress["ratio"] = ratio
    return Reply(reply.status, {**reply.body, "progress": progress}, reply.headers)


def huge_body_bytes(reply: Reply, size_mb: float) -> bytes:
    """The answer plus a ``padding`` string field, ``size_mb`` MiB of valid JSON in all."""
    target = int(size_mb * 1024 * 1024)
    body = reply.body if isinstance(reply.body, dict) else {"body": reply.body}
    empty = json.dumps({**body, "padding": ""}).encode()
    return json.dumps({**body, "padding": "x" * max(0, target - len(empty))}).encode()
