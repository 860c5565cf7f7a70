"""Response bodies: CodeArts ``error_code``/``error_msg`` errors and the answers of injected faults.

Codes marked "invented" are not documented anywhere we could see; they are plausible gateway codes so that
clients exercise their generic 5xx handling.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_provider_codecheck.emulator.faults import Fault


def cc_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error_code": code, "error_msg": message, **extra}, status=status)


def task_not_found(task_id: str) -> web.Response:
    """The invented 404 (fault kind ``not_found_404``, or ``unknown_task="http_404"``): no Huawei page shows it."""
    return cc_error(404, "CC.00000404", f"task {task_id} not found")


# What the service answers for a task id it does not know. The API pages of every task route document only
# 200/400/401, and the error-code table lists CC.00050002 "query task detail error" with HTTP status 200
# (support.huaweicloud.com/api-codecheck/ErrorCode.html); see the README, "Unknown task".
TASK_LOOKUP_FAILED = (200, "CC.00050002", "query task detail error")


def unknown_task(task_id: str, mode: str) -> web.Response:
    if mode == "http_404":
        return task_not_found(task_id)
    status, code, message = TASK_LOOKUP_FAILED
    return cc_error(status, code, message)


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


def fault_response(fault: Fault, task_id: str) -> web.Response:
    """The answer for faults that replace the response (not ``reset``/``slow``, handled by the caller)."""
    if fault.kind in JSON_FAULTS:
        status, code, message = JSON_FAULTS[fault.kind]
        return cc_error(status, code, message)
    if fault.kind == "throttle_429":
        retry_after = f"{fault.retry_after:g}"
        response = cc_error(429, "APIGW.0308", "throttled")
        response.headers["Retry-After"] = retry_after
        return response
    if fault.kind == "html_502":
        return web.Response(status=502, text=HTML_502, content_type="text/html")
    if fault.kind == "malformed_json":
        return web.Response(status=200, text=MALFORMED_JSON, content_type="application/json")
    if fault.kind == "unknown_status":
        return web.json_response({"task_status": 7, "progress": {"ratio": None, "info": None}})
    if fault.kind == "not_found_404":
        return task_not_found(task_id)
    raise ValueError(f"fault kind {fault.kind} has no canned response")
