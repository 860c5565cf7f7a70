"""Waiting for a scan to end: one sans-I/O state object, ``ScanWait``, behind every way of waiting.

The trigger (async), the hook's blocking ``wait_for_scan`` and the sensor's ``poke`` all ask the progress API
themselves and hand each answer (a TaskProgress, or the CodeCheckError the poll raised) to ``ScanWait.observe``,
which decides: the final event, or keep waiting; how long to pause next; what to log. So the verdict, the
stale guard, Retry-After, the pacing and the log lines are the same whichever driver waits.

``wait_for_scan`` (below) is the same object behind effects (``Poll``, ``Pause``, ``Report``), for drivers that
prefer a generator (tests, benchmarks).
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


class ScanWait:
    """One wait for a scan to end (h11-style: the caller does the I/O, this object decides).

    Per poll: ``expired(now)`` (the timeout event once ``deadline`` passed, else None), poll bounded by
    ``time_left(now)``, ``observe(answer, now)`` (the final event, or None to keep waiting), ``flush(log)`` (log
    the lines that answer is worth), then pause ``next_pause(now)``. Times are Unix seconds, passed in.

    ``stale_until``: after we start a run the service may keep reporting the *previous* run's terminal
    status for a while. Until that moment, a terminal status is trusted only once this run has been seen
    checking (task_status 0).

    A poll answered with an error carrying ``retry_after`` (HTTP 429 Retry-After) makes the next pause at least
    that long, still bounded by the deadline.

    Pauses adapt to the scan's estimated end (core/pacing.py, docs/polling.md): between ``poll_interval`` near
    the end and ``max_poll_interval`` (default: ten intervals, at most 5 minutes) far from it or while stalled.
    """

    def __init__(
        self,
        codecheck_task_id: str,
        poll_interval: float,
        deadline: float | None = None,
        stale_until: float | None = None,
        exec_id: str | None = None,
        max_poll_interval: float | None = None,
    ) -> None:
        self.codecheck_task_id = codecheck_task_id
        self.deadline = deadline
        self.stale_until = stale_until
        self.exec_id = exec_id
        self.pacer = Pacer(poll_interval, max_poll_interval or default_max_interval(poll_interval))
        self.reports: list[Report] = []
        """Lines to log, oldest first, until ``flush`` or ``take_reports``."""
        self.retry_after = 0.0
        """The server's Retry-After from the last throttled answer not yet paused for (0: none)."""
        self._seen_checking = False
        self._last: tuple[Any, ...] | None = None

    def __repr__(self) -> str:
        return f"ScanWait(task={self.codecheck_task_id!r}, exec_id={self.exec_id!r})"

    @property
    def seen_checking(self) -> bool:
        """Whether a poll has shown this scan checking (task_status 0): a scan of ours is running or ran."""
        return self._seen_checking

    def time_left(self, now: float) -> float | None:
        """Seconds before the deadline (None: no deadline): the bound of the next poll."""
        return None if self.deadline is None else self.deadline - now

    def expired(self, now: float) -> dict[str, Any] | None:
        """The timeout event once the deadline has passed (poll no more), else None."""
        if self.deadline is None or now < self.deadline:
            return None
        return make_event(
            "timeout",
            self.codecheck_task_id,
            f"CodeArts task {self.codecheck_task_id} did not finish before the deadline",
            exec_id=self.exec_id,
        )

    def observe(self, answer: TaskProgress | CodeCheckError, now: float) -> dict[str, Any] | None:
        """Take one poll's answer: the final event (terminal status, permanent error), or None to keep waiting."""
        if isinstance(answer, CodeCheckError):
            if not answer.retryable:
                return make_event(
                    "error",
                    self.codecheck_task_id,
                    f"Polling stopped: {answer}",
                    exec_id=self.exec_id,
                    error=answer,
                )
            self._report("warning", f"Transient error, still waiting: {answer}")
            if answer.retry_after:
                # Throttled: never poll again before the server asked (bounded below by the deadline).
                self.retry_after = max(self.retry_after, answer.retry_after)
            return None
        if not isinstance(answer, TaskProgress):  # a driver bug, not a service condition
            raise TypeError(f"Poll must be answered with TaskProgress or CodeCheckError, got {answer!r}")
        state = (answer.status, answer.ratio, answer.info)
        if state != self._last:
            self._last = state
            self._report("info", f"CodeArts task {self.codecheck_task_id}: {describe(answer)}")
        self._seen_checking = self._seen_checking or answer.status is TaskStatus.CHECKING
        stale = not self._seen_checking and self.stale_until is not None and now < self.stale_until
        if answer.status.is_terminal and not stale:
            return make_event(
                answer.status.value,
                self.codecheck_task_id,
                f"CodeArts task {self.codecheck_task_id} ended: {describe(answer)}",
                progress=answer,
                exec_id=self.exec_id,
            )
        self.pacer.observe(now, answer.status is TaskStatus.CHECKING, answer.ratio)
        if news := self.pacer.news(now):
            self._report("info", f"CodeArts task {self.codecheck_task_id}: {news}")
        return None

    def next_pause(self, now: float) -> float:
        """Seconds to wait before the next poll (uses up a pending Retry-After); never past the deadline."""
        pause = max(self.pacer.pause(now), self.retry_after)
        self.retry_after = 0.0
        if self.deadline is not None:
            pause = max(0.0, min(pause, self.deadline - now))
        return pause

    def take_reports(self) -> list[Report]:
        reports, self.reports = self.reports, []
        return reports

    def flush(self, log: Any) -> None:
        """Log the pending lines on ``log`` (a logging or structlog logger) at their levels: info, warning."""
        for report in self.take_reports():
            getattr(log, report.level)(report.message)

    def _report(self, level: str, message: str) -> None:
        self.reports.append(Report(level, message))


def wait_for_scan(
    codecheck_task_id: str,
    poll_interval: float,
    deadline: float | None,
    stale_until: float | None = None,
    exec_id: str | None = None,
    clock: Callable[[], float] = time.time,
    max_poll_interval: float | None = None,
) -> Generator[WaitEffect, Any, dict[str, Any]]:
    """``ScanWait`` as effects: yields ``Poll`` (answer it), ``Report`` and ``Pause``; returns the final event."""
    wait = ScanWait(codecheck_task_id, poll_interval, deadline, stale_until, exec_id, max_poll_interval)
    while (event := wait.expired(clock())) is None:
        answer = yield Poll(wait.time_left(clock()))
        event = wait.observe(answer, clock())
        yield from wait.take_reports()
        if event is not None:
            break
        yield Pause(wait.next_pause(clock()))
    return event


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
