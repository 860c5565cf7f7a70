"""The aiohttp application: CodeArts Check routes, IAM, and the plumbing every request goes through.

Order for CodeArts routes: authenticate (401 on failure), then faults (per-task plan, then global plan),
then the operation itself (unknown tasks: 200 ``CC.00050002``, see the README). Faults therefore only hit authenticated requests, which
keeps "bad credentials → 401" deterministic even while a fault plan is active.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiohttp import web

from airflow_provider_codecheck.emulator import iam
from airflow_provider_codecheck.emulator.admin import add_admin_routes
from airflow_provider_codecheck.emulator.auth import SignedRequest
from airflow_provider_codecheck.emulator.faults import ALL_ROUTES, Fault
from airflow_provider_codecheck.emulator.responses import cc_error, fault_response, unknown_task
from airflow_provider_codecheck.emulator.service import EmulatorService
from airflow_provider_codecheck.emulator.state import Task

SERVICE = web.AppKey("service", EmulatorService)
# Per-request values live in context variables: each request is served in its own task (and context), and
# plain string keys on the request trigger aiohttp's NotAppKeyWarning while RequestKey is not in older aiohttp.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")
OUTCOME: ContextVar[str | None] = ContextVar(
    "outcome", default=None
)  # "reset" when a fault aborted the connection

Operation = Callable[[EmulatorService, Task, bytes], web.Response]


def service_of(request: web.Request) -> EmulatorService:
    return request.app[SERVICE]


def request_id() -> str:
    return REQUEST_ID.get()


@web.middleware
async def count_requests(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
):
    REQUEST_ID.set(uuid.uuid4().hex)
    OUTCOME.set(None)
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


async def apply_fault(request: web.Request, fault: Fault, task_id: str) -> web.Response | None:
    """Answer for the fault, or None when the request should then be served normally (``slow``)."""
    if fault.kind == "reset":
        abort_connection(request)
        OUTCOME.set("reset")
        # Never delivered: aiohttp quietly drops a response whose connection is gone.
        return web.Response(status=500)
    if fault.kind == "slow":
        await asyncio.sleep(fault.delay_s)
        return None
    if fault.kind == "token_expired":
        # Models a token that runs out in the middle of a long wait: every token is dead from now on.
        service_of(request).tokens.expire_all()
    return fault_response(fault, task_id)


def codearts_route(route: str, operation: Operation) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        service = service_of(request)
        body = await request.read()
        failure = service.auth.check(
            SignedRequest(
                method=request.method,
                path=request.raw_path.split("?", 1)[0],
                query=list(request.query.items()),
                headers=request.headers,
                body=body,
            )
        )
        if failure is not None:
            service.stats.auth_failures += 1
            extra = {"request_id": request_id()} if failure.error_code.startswith("APIGW") else {}
            return cc_error(401, failure.error_code, failure.error_msg, **extra)
        task_id = request.match_info["task_id"]
        task = service.lookup(task_id)
        fault = service.pick_fault(route, task_id if task else None)
        if fault is not None:
            answer = await apply_fault(request, fault, task_id)
            if answer is not None:
                return answer
        if task is None:
            return unknown_task(task_id, service.config.unknown_task)
        return operation(service, task, body)

    return handle


# --- CodeArts Check operations ----------------------------------------------------------------------------


def show_progress(service: EmulatorService, task: Task, body: bytes) -> web.Response:
    return web.json_response(task.progress(service.clock()).to_json())


def run_task(service: EmulatorService, task: Task, body: bytes) -> web.Response:
    now = service.clock()
    # Every run call that reaches a task counts, including refused ones, so tests can spot duplicate runs.
    service.stats.runs[task.task_id] += 1
    if task.is_running(now):
        return cc_error(200, "CC.00050015", "task is running")
    return web.json_response({"exec_id": task.start_scan(now).exec_id})


def stop_task(service: EmulatorService, task: Task, body: bytes) -> web.Response:
    task.stop_scan(service.clock())
    return web.json_response({})


def _time_text(service: EmulatorService, moment: float | None) -> str | None:
    return None if moment is None else service.wall_time_of(moment).strftime("%Y-%m-%d %H:%M:%S")


def defects_summary(service: EmulatorService, task: Task, body: bytes) -> web.Response:
    now = service.clock()
    counts = task.defects
    issues = sum(counts.values())
    quality = (
        100 - 10 * counts["critical"] - 3 * counts["major"] - counts["minor"] - 0.2 * counts["suggestion"]
    )
    scan = task.scan
    summary: dict[str, Any] = {
        "task_id": task.task_id,
        "task_name": task.task_name,
        "creator_id": "emulator",
        "git_url": task.git_url,
        "git_branch": task.git_branch,
        "last_check_time": _time_text(service, scan.finished_at(now) if scan else None),
        "last_exec_time": _time_text(service, scan.started_at if scan else None),
        "check_type": "source",
        "created_at": task.created_wall.strftime("%Y-%m-%d %H:%M:%S"),
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
    return web.json_response(summary)


def defects_statistic(service: EmulatorService, task: Task, body: bytes) -> web.Response:
    unresolved = sum(task.defects.values())
    return web.json_response(
        {
            "severity": dict(task.defects),
            "status": {"unresolved": unresolved, "resolved": task.resolved, "dismissed": task.dismissed},
        }
    )


# --- IAM --------------------------------------------------------------------------------------------------


async def iam_tokens(request: web.Request) -> web.Response:
    service = service_of(request)
    fault = service.pick_fault("iam", None)
    if fault is not None:
        answer = await apply_fault(request, fault, "")
        if answer is not None:
            return answer
    try:
        scope = iam.check_password_auth(await _json_or_none(request), service.config)
    except iam.IamError as err:
        if err.status == 401:
            service.stats.auth_failures += 1
        return web.json_response(err.body, status=err.status)
    lifetime = service.config.token_lifetime_s
    token = service.tokens.issue(lifetime)
    service.stats.iam_tokens_issued += 1
    body = iam.token_body(
        scope, service.config, service.wall_clock(), lifetime, "nocatalog" not in request.query
    )
    return web.json_response(body, status=201, headers={"X-Subject-Token": token})


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
    router.add_post("/v3/auth/tokens", iam_tokens, name="iam")
    add_admin_routes(app, SERVICE)
    return app
