"""The aiohttp application: CodeArts Check routes, IAM, and the plumbing every request goes through.

Order for CodeArts routes: authenticate (401 on failure), then the quota (429 when its bucket is empty), then
faults (per-task plan, then global plan), then the operation itself (unknown tasks: 200 ``CC.00050002``, see
the README), then the faults that change a performed operation's answer (504 after the fact, reset, trickle,
huge or odd bodies). Faults therefore only hit authenticated requests, which keeps "bad credentials → 401"
deterministic even while a fault plan is active.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from airflow_provider_codecheck.emulator import iam
from airflow_provider_codecheck.emulator.admin import add_admin_routes
from airflow_provider_codecheck.emulator.auth import AuthFailure, SignedRequest
from airflow_provider_codecheck.emulator.faults import ALL_ROUTES, Fault
from airflow_provider_codecheck.emulator.responses import (
    Reply,
    fault_response,
    gateway_timeout,
    huge_body_bytes,
    task_not_found,
    throttled,
    token_rejected_response,
    unknown_task_reply,
    whole_seconds,
    with_extra_fields,
    with_odd_ratio,
)
from airflow_provider_codecheck.emulator.service import EmulatorService
from airflow_provider_codecheck.emulator.state import Task

SERVICE = web.AppKey("service", EmulatorService)
# Per-request values live in context variables: each request is served in its own task (and context), and
# plain string keys on the request trigger aiohttp's NotAppKeyWarning while RequestKey is not in older aiohttp.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")
OUTCOME: ContextVar[str | None] = ContextVar(
    "outcome", default=None
)  # "reset" when a fault aborted the connection


def service_of(request: web.Request) -> EmulatorService:
    return request.app[SERVICE]


def request_id() -> str:
    return REQUEST_ID.get()


Operation = Callable[[EmulatorService, Task, web.Request, bytes], Reply]


def is_absolute_form(target: str) -> bool:
    return target[:8].lower().startswith(("http://", "https://"))


def origin_form(target: str) -> str:
    """The path and query of a request target; an absolute-form target (``http://host/path?q``, what a client
    sends to a plain-HTTP forward proxy) loses its scheme and authority. Raw bytes are kept: the signature
    covers the path exactly as sent."""
    if not is_absolute_form(target):
        return target
    rest = target.split("://", 1)[1]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    path = rest[cut:]
    return path if path.startswith("/") else "/" + path


@web.middleware
async def count_requests(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
):
    REQUEST_ID.set(uuid.uuid4().hex)
    OUTCOME.set(None)
    target = request.raw_path
    if not origin_form(target).startswith("/_emulator/"):
        stats = service_of(request).stats
        stats.recent_targets.append(target)
        if is_absolute_form(target):
            stats.proxied_requests += 1
    route = request.match_info.route.name
    if route not in ALL_ROUTES:
        return await handler(request)
    stats = service_of(request).stats
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        stats.record_request(route, str(exc.status), request.headers.get("User-Agent", ""))
        raise
    stats.record_request(route, OUTCOME.get() or str(response.status), request.headers.get("User-Agent", ""))
    return response


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Request-Id"] = request_id() or uuid.uuid4().hex


def abort_connection(request: web.Request) -> None:
    """Drop the TCP connection with an RST and no response, like a crashed gateway."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 makes close() send RST instead of FIN, so clients see "connection reset".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def lost_reply(request: web.Request) -> web.Response:
    abort_connection(request)
    OUTCOME.set("reset")
    # Never delivered: aiohttp quietly drops a response whose connection is gone.
    return web.Response(status=500)


async def apply_fault(request: web.Request, fault: Fault, task_id: str) -> web.StreamResponse | None:
    """Answer for a fault that replaces the operation, or None when the request should then be served
    normally (``slow``)."""
    if fault.kind == "reset":
        return lost_reply(request)
    if fault.kind == "slow":
        await asyncio.sleep(fault.delay_s)
        return None
    service = service_of(request)
    if fault.kind == "token_expired":
        # Models a token that runs out in the middle of a long wait: every token is dead from now on.
        service.tokens.expire_all()
    return fault_response(fault, task_id, request_id(), service.wall_clock())


async def apply_after_fault(request: web.Request, fault: Fault, reply: Reply) -> web.StreamResponse:
    """Answer for a fault of the ``AFTER_KINDS`` family: the operation behind ``reply`` has been performed."""
    if fault.kind == "gateway_timeout_504":
        return gateway_timeout(fault.code or "APIG.0203", request_id())
    if fault.kind == "reset_after":
        return lost_reply(request)
    if fault.kind == "extra_fields":
        return render(request, with_extra_fields(reply))
    if fault.kind == "odd_ratio":
        return render(request, with_odd_ratio(reply, fault.ratio))
    if fault.kind == "huge_body":
        return web.Response(
            status=reply.status,
            body=huge_body_bytes(shaped(request, reply), fault.size_mb),
            content_type="application/json",
            headers=reply.headers,
        )
    if fault.kind == "trickle":
        return await trickle(request, render(request, reply), fault.chunk, fault.delay_s)
    raise ValueError(f"fault kind {fault.kind} does not follow an operation")


async def trickle(
    request: web.Request, answer: web.Response, chunk: int, delay_s: float
) -> web.StreamResponse:
    """Send ``answer``'s body ``chunk`` bytes every ``delay_s`` seconds (headers with Content-Length at once)."""
    body = answer.body if isinstance(answer.body, bytes) else b""
    stream = web.StreamResponse(status=answer.status)
    stream.content_type = answer.content_type
    stream.charset = answer.charset
    for name, value in answer.headers.items():
        if name.lower() not in ("content-type", "content-length"):
            stream.headers[name] = value
    stream.content_length = len(body)
    await stream.prepare(request)
    for offset in range(0, len(body), chunk):
        if offset:
            await asyncio.sleep(delay_s)
        await stream.write(body[offset : offset + chunk])
    await stream.write_eof()
    return stream


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [drop_nulls(item) for item in value]
    return value


def shaped(request: web.Request, reply: Reply) -> Reply:
    """Apply the null-field mode: with "absent", fields without a value are left out of a successful answer."""
    if service_of(request).null_fields == "absent" and reply.is_success:
        return Reply(reply.status, drop_nulls(reply.body), reply.headers)
    return reply


def render(request: web.Request, reply: Reply) -> web.Response:
    return shaped(request, reply).render()


def auth_failure_response(service: EmulatorService, failure: AuthFailure) -> web.Response:
    service.stats.auth_failures += 1
    if failure.access_key is not None:
        service.stats.aksk_failures[failure.access_key] += 1
    return token_rejected_response(failure.error_code, failure.error_msg, request_id())


def codearts_route(
    route: str, operation: Operation
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        service = service_of(request)
        body = await request.read()
        failure = service.auth.check(
            SignedRequest(
                method=request.method,
                path=origin_form(request.raw_path).split("?", 1)[0],
                query=list(request.query.items()),
                headers=request.headers,
                body=body,
            )
        )
        if failure is not None:
            return auth_failure_response(service, failure)
        throttle = service.quota.take(route)
        if throttle is not None:
            service.stats.throttled[route] += 1
            return throttled(
                "APIGW.0308",
                throttle.limit,
                whole_seconds(throttle.wait_s),
                throttle.retry_after_form,
                service.wall_clock(),
                request_id(),
            )
        task_id = request.match_info["task_id"]
        task = service.lookup(task_id)
        fault = service.pick_fault(route, task_id if task else None, "X-Auth-Token" in request.headers)
        if fault is not None and not fault.performs_operation:
            answer = await apply_fault(request, fault, task_id)
            if answer is not None:
                return answer
        if task is None:
            if service.config.unknown_task == "http_404":
                return task_not_found(task_id)
            reply = unknown_task_reply()
        else:
            reply = operation(service, task, request, body)
        if fault is not None and fault.performs_operation:
            return await apply_after_fault(request, fault, reply)
        return render(request, reply)

    return handle


# --- CodeArts Check operations ----------------------------------------------------------------------------


def show_progress(service: EmulatorService, task: Task, request: web.Request, body: bytes) -> Reply:
    now = service.clock()
    job_id = request.query.get("job_id")
    if job_id:  # an empty job_id is taken as absent (assumption, see the README)
        scan = task.executions.get(job_id)
        if scan is None:
            return unknown_task_reply()  # an execution record the task never had: the documented lookup error
        return Reply(200, scan.execution_progress(now).to_json())
    return Reply(200, task.progress(now).to_json())


def run_task(service: EmulatorService, task: Task, request: web.Request, body: bytes) -> Reply:
    now = service.clock()
    # Every run call that reaches a task counts, including refused ones, so tests can spot duplicate runs.
    service.stats.runs[task.task_id] += 1
    if task.is_running(now):
        return Reply(200, {"error_code": "CC.00050015", "error_msg": "task is running"})
    return Reply(200, {"exec_id": task.start_scan(now).exec_id})


def stop_task(service: EmulatorService, task: Task, request: web.Request, body: bytes) -> Reply:
    task.stop_scan(service.clock())
    return Reply(200, {})


# The current ShowTaskDetailV2 page: "使用UTC时间,格式为yyyy-MM-ddTHH:mm:ssZ。例如:2020-09-25T12:05:00Z".
SUMMARY_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _time_text(service: EmulatorService, moment: float | None) -> str | None:
    return None if moment is None else service.wall_time_of(moment).strftime(SUMMARY_TIME_FORMAT)


def defects_summary(service: EmulatorService, task: Task, request: web.Request, body: bytes) -> Reply:
    now = service.clock()
    counts = task.defects
    issues = sum(counts.values())
    quality = (
        100 - 10 * counts["critical"] - 3 * counts["major"] - counts["minor"] - 0.2 * counts["suggestion"]
    )
    scan = task.scan
    job_id = request.query.get("job_id")
    if job_id:  # the ShowTaskDetailV2 page lists job_id too: the summary of that execution (its times)
        scan = task.executions.get(job_id)
        if scan is None:
            return unknown_task_reply()
    summary: dict[str, Any] = {
        "task_id": task.task_id,
        "task_name": task.task_name,
        "creator_id": "emulator",
        "git_url": task.git_url,
        "git_branch": task.git_branch,
        "last_check_time": _time_text(service, scan.finished_at(now) if scan else None),
        "last_exec_time": _time_text(service, scan.started_at if scan else None),
        "check_type": "source",
        "created_at": task.created_wall.strftime(SUMMARY_TIME_FORMAT),
        "trigger_type": "0",
        "is_access": "1" if counts["critical"] == 0 else "0",
        "code_line_total": 12000,
        "code_line": 9500,
        "issue_count": issues,
        "complexity_count": 42,
        "duplicated_lines": 120,
        "comment_lines": 1800,
        "duplicated_blocks": 6,
        "code_quality": round(max(0.0, quality), 2),
        "risk_coefficient": round(min(100.0, issues / 10), 2),
        "duplication_ratio": "1.26%",
        "comment_ratio": "15.93%",
        "file_duplication_ratio": "2.10%",
        "cyclomatic_complexity_per_method": "2.31",
        "cyclomatic_complexity_per_file": "11.40",
        # The API returns the per-severity counts as strings (ShowTaskDetailResponse model).
        **{f"{severity}_count": str(count) for severity, count in counts.items()},
    }
    return Reply(200, summary)


# CheckRecord [API CheckRecord.html / codecheck_api_1008.html]: filter values and record times are UTC
# "yyyy-MM-ddTHH:mm:ssZ"; limit 1-1000 (default 10); offset 0-999999 (default 0), described as "page number,
# like page_num" by the current pages (older pages: "offset for pagination").
CHECK_RECORD_MAX_LIMIT = 1000
CHECK_RECORD_DEFAULT_LIMIT = 10


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if low <= value <= high else None


def _query_time(request: web.Request, name: str) -> datetime | bool | None:
    """The parsed filter time, None when absent, False when malformed."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return datetime.strptime(raw, SUMMARY_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return False


PARAMETERS_NOT_VALID = {"error_code": "CC.00050000", "error_msg": "parameters not valid"}


def check_records(service: EmulatorService, task: Task, request: web.Request, body: bytes) -> Reply:
    """Finished executions, newest first: ``{"data": [{job_id, check_time, check_end_time, issue_counts}],
    "total"}``. ``start_time`` filters on the scan's start, ``end_time`` on its end (default now)."""
    now = service.clock()
    limit = _query_int(request, "limit", CHECK_RECORD_DEFAULT_LIMIT, 1, CHECK_RECORD_MAX_LIMIT)
    page = _query_int(request, "offset", 0, 0, 999_999)
    start = _query_time(request, "start_time")
    end = _query_time(request, "end_time")
    if limit is None or page is None or start is False or end is False:
        return Reply(200, dict(PARAMETERS_NOT_VALID))  # the documented CC.00050000 (HTTP 200)
    records = []
    for scan in task.finished_scans(now):
        finished = scan.finished_at(now)
        assert finished is not None
        started_wall = service.wall_time_of(scan.started_at).replace(microsecond=0)
        ended_wall = service.wall_time_of(finished).replace(microsecond=0)
        if isinstance(start, datetime) and started_wall < start:
            continue
        if isinstance(end, datetime) and ended_wall > end:
            continue
        records.append(
            (
                scan.started_at,
                {
                    "job_id": scan.exec_id,
                    "check_time": started_wall.strftime(SUMMARY_TIME_FORMAT),
                    "check_end_time": ended_wall.strftime(SUMMARY_TIME_FORMAT),
                    "issue_counts": {
                        "critical": scan.defects["critical"],
                        "serious": scan.defects["major"],
                        "normal": scan.defects["minor"],
                        "prompt": scan.defects["suggestion"],
                    },
                },
            )
        )
    records.sort(key=lambda item: item[0], reverse=True)
    window = records[page * limit : (page + 1) * limit]
    return Reply(200, {"data": [record for _, record in window], "total": len(records)})


def defects_statistic(service: EmulatorService, task: Task, request: web.Request, body: bytes) -> Reply:
    unresolved = sum(task.defects.values())
    return Reply(
        200,
        {
            "severity": dict(task.defects),
            "status": {"unresolved": unresolved, "resolved": task.resolved, "dismissed": task.dismissed},
        },
    )


# --- IAM --------------------------------------------------------------------------------------------------


async def iam_tokens(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    fault = service.pick_fault("iam", None, "X-Auth-Token" in request.headers)
    if fault is not None and not fault.performs_operation:
        answer = await apply_fault(request, fault, "")
        if answer is not None:
            return answer
    reply = issue_iam_token(service, request, await _json_or_none(request))
    if fault is not None and fault.performs_operation:
        return await apply_after_fault(request, fault, reply)
    return reply.render()


def issue_iam_token(service: EmulatorService, request: web.Request, body: Any) -> Reply:
    try:
        scope = iam.check_password_auth(body, service.config)
    except iam.IamError as err:
        if err.status == 401:
            service.stats.auth_failures += 1
        return Reply(err.status, err.body)
    lifetime = service.config.token_lifetime_s
    token = service.tokens.issue(lifetime)
    service.stats.iam_tokens_issued += 1
    token_body = iam.token_body(
        scope, service.config, service.wall_clock(), lifetime, "nocatalog" not in request.query
    )
    return Reply(201, token_body, {"X-Subject-Token": token})


async def _json_or_none(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def build_app(service: EmulatorService) -> web.Application:
    app = web.Application(middlewares=[count_requests])
    app[SERVICE] = service
    app.on_response_prepare.append(add_request_id)
    tasks = "/v2/tasks/{task_id}"
    router = app.router
    router.add_get(f"{tasks}/progress", codearts_route("progress", show_progress), name="progress")
    router.add_post(f"{tasks}/run", codearts_route("run", run_task), name="run")
    router.add_post(f"{tasks}/stop", codearts_route("stop", stop_task), name="stop")
    router.add_get(
        f"{tasks}/defects-summary", codearts_route("defects_summary", defects_summary), name="defects_summary"
    )
    router.add_get(
        f"{tasks}/defects-statistic",
        codearts_route("defects_statistic", defects_statistic),
        name="defects_statistic",
    )
    router.add_get(
        "/v2/{project_id}/tasks/{task_id}/checkrecord",
        codearts_route("checkrecord", check_records),
        name="checkrecord",
    )
    router.add_post("/v3/auth/tokens", iam_tokens, name="iam")
    add_admin_routes(app, SERVICE)
    return app
