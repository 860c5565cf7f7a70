"""Waiting for a scan to end, as a sans-I/O flow shared by the trigger (async) and the worker (sync).

The flow yields ``Poll`` (answer: a TaskProgress or the CodeCheckError the poll raised), ``Pause``
(sleep that long) and ``Report`` (a line worth logging), and returns the one final event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from airflow_provider_codecheck.core.errors import CodeCheckError
from airflow_provider_codecheck.core.models import TaskProgress, TaskStatus
from airflow_provider_codecheck.core.pacing import Pacer, default_max_interval

EVENT_STATUSES = ("success", "failed", "stopped", "timeout", "error")


@dataclass(frozen=True)
class Poll:
    timeout: float | None
    """Seconds left before the deadline (None: no deadline); the driver bounds the poll by it."""


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Report:
    level: str  # "info" or "warning"
    message: str


WaitEffect = Poll | Pause | Report


def make_event(
    status: str,
    codecheck_task_id: str,
    message: str,
    progress: TaskProgress | None = None,
    exec_id: str | None = None,
    error: CodeCheckError | None = None,
) -> dict[str, Any]:
    """The trigger's single event; plain JSON so it survives serialization."""
    return {
        "status": status,
        "codecheck_task_id": codecheck_task_id,
        "exec_id": exec_id,
        "task_status": progress.status.wire if progress else None,
        "status_name": progress.status.value if progress else None,
        "ratio": progress.ratio if progress else None,
        "info": progress.info if progress else None,
        "message": message,
        "error_code": error.error_code if error else None,
        "request_id": error.request_id if error else None,
    }


def describe(progress: TaskProgress) -> str:
    ratio = "-" if progress.ratio is None else f"{progress.ratio}%"
    return (
        f"{progress.status.value} (task_status={progress.status.wire}, ratio={ratio}, info={progress.info!r})"
    )


def wait_for_scan(
    codecheck_task_id: str,
    poll_interval: float,
    deadline: float | None,
    stale_until: float | None = None,
    exec_id: str | None = None,
    clock: Callable[[], float] = time.time,
    max_poll_interval: float | None = None,
) -> Generator[WaitEffect, Any, dict[str, Any]]:
    """Poll until the scan reaches a terminal status, a permanent error, or ``deadline`` (Unix time).

    ``stale_until``: after we start a run the service may keep reporting the *previous* run's terminal
    status for a while. Until that moment, a terminal status is trusted only once this run has been seen
    checking (task_status 0).

    A poll answered with an error carrying ``retry_after`` (HTTP 429 Retry-After) makes the next pause at least
    that long, still bounded by the deadline.

    Pauses adapt to the scan's estimated end (core/pacing.py, docs/polling.md): between ``poll_interval`` near
    the end and ``max_poll_interval`` (default: ten intervals, at most 5 minutes) far from it or while stalled.
    """
    pacer = Pacer(poll_interval, max_poll_interval or default_max_interval(poll_interval))
    seen_checking = False
    throttled_for = 0.0
    last: tuple[Any, ...] | None = None
    while True:
        now = clock()
        if deadline is not None and now >= deadline:
            return make_event(
                "timeout",
                codecheck_task_id,
                f"CodeArts task {codecheck_task_id} did not finish before the deadline",
                exec_id=exec_id,
            )
        answer = yield Poll(None if deadline is None else deadline - now)
        if isinstance(answer, CodeCheckError):
            if not answer.retryable:
                return make_event(
                    "error", codecheck_task_id, f"Polling stopped: {answer}", exec_id=exec_id, error=answer
                )
            yield Report("warning", f"Transient error, still waiting: {answer}")
            if answer.retry_after:
                # Throttled: never poll again before the server asked (bounded below by the deadline).
                throttled_for = max(throttled_for, answer.retry_after)
        elif isinstance(answer, TaskProgress):
            state = (answer.status, answer.ratio, answer.info)
            if state != last:
                last = state
                yield Report("info", f"CodeArts task {codecheck_task_id}: {describe(answer)}")
            seen_checking = seen_checking or answer.status is TaskStatus.CHECKING
            stale = not seen_checking and stale_until is not None and clock() < stale_until
            if answer.status.is_terminal and not stale:
                return make_event(
                    answer.status.value,
                    codecheck_task_id,
                    f"CodeArts task {codecheck_task_id} ended: {describe(answer)}",
                    progress=answer,
                    exec_id=exec_id,
                )
            pacer.observe(clock(), answer.status is TaskStatus.CHECKING, answer.ratio)
            if news := pacer.news(clock()):
                yield Report("info", f"CodeArts task {codecheck_task_id}: {news}")
        else:  # a driver bug, not a service condition
            raise TypeError(f"Poll must be answered with TaskProgress or CodeCheckError, got {answer!r}")
        pause = max(pacer.pause(clock()), throttled_for)
        throttled_for = 0.0
        if deadline is not None:
            pause = max(0.0, min(pause, deadline - clock()))
        yield Pause(pause)


def validate_event(event: Any) -> dict[str, Any]:
    """Reject a missing or malformed event: a wait never ends in success by accident."""
    if not isinstance(event, dict):
        raise ValueError(f"trigger event must be a dict, got {type(event).__name__}")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise ValueError(f"trigger event has unknown status {status!r}")
    if status in ("success", "failed", "stopped"):
        expected = TaskStatus(status).wire
        if event.get("task_status") != expected:
            raise ValueError(
                f"trigger event status {status!r} disagrees with task_status {event.get('task_status')!r}"
            )
    return event
