"""Scan lifecycle of emulated CodeArts Check tasks.

Time comes from an injectable monotonic clock, so tests can move time by hand (``ManualClock``) and check
the lag / running / final phases exactly instead of sleeping.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_provider_codecheck.emulator import defaults

Clock = Callable[[], float]

RUNNING, FAILED, SUCCEEDED, STOPPED = 0, 1, 2, 3
TERMINAL = (FAILED, SUCCEEDED, STOPPED)
SEVERITIES = ("critical", "major", "minor", "suggestion")


class ManualClock:
    """A monotonic clock that only moves when told to; pass it as ``clock=`` to the server."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Progress:
    """What ``GET .../progress`` reports; ``None`` everywhere means "never checked"."""

    task_status: int | None = None
    ratio: str | None = None
    info: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"task_status": self.task_status, "progress": {"ratio": self.ratio, "info": self.info}}


NEVER_RUN = Progress()


def terminal_progress(status: int) -> Progress:
    # Per the docs, ratio and info are only filled while checking and after a successful check.
    if status == SUCCEEDED:
        return Progress(SUCCEEDED, "100%", "success")
    return Progress(status, None, None)


@dataclass
class Scan:
    exec_id: str
    started_at: float
    lag_s: float
    duration_s: float
    final_status: int
    # What progress showed before this scan; reported again during the lag.
    previous: Progress
    stopped_at: float | None = None
    # The task's defect counts when this scan started (its check record's issue counts).
    defects: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    # What started it: "run" (the API), "commit" (admin call) or "schedule" (the task's schedule_s).
    origin: str = "run"

    def ends_at(self) -> float:
        return self.started_at + self.lag_s + self.duration_s

    def is_running(self, now: float) -> bool:
        return self.stopped_at is None and now < self.ends_at()

    def progress(self, now: float) -> Progress:
        if self.stopped_at is not None:
            return terminal_progress(STOPPED)
        elapsed = now - self.started_at
        if elapsed < self.lag_s:
            # Deliberately stale: a client must not take the previous result for this scan's result.
            return self.previous
        if now < self.ends_at():
            # The epsilon keeps float noise (1009.9 - 1000 = 9.8999...) from showing 98% at 99%.
            percent = int(100 * (elapsed - self.lag_s) / self.duration_s + 1e-9)
            return Progress(RUNNING, f"{min(percent, 100)}%", "running")
        return terminal_progress(self.final_status)

    def execution_progress(self, now: float) -> Progress:
        """The status of this execution record (``progress?job_id=<exec_id>``).

        Unlike the task's progress, the record never shows the previous scan: during the lag it is already
        "checking" at 0% (an assumption, see the README).
        """
        if self.stopped_at is None and now - self.started_at < self.lag_s:
            return Progress(RUNNING, "0%", "running")
        return self.progress(now)

    def to_admin_json(self, now: float) -> dict[str, Any]:
        return {
            "exec_id": self.exec_id,
            "started_at": self.started_at,
            "stopped": self.stopped_at is not None,
            "running": self.is_running(now),
            "origin": self.origin,
            "finished_at": self.finished_at(now),
            **self.execution_progress(now).to_json(),
        }

    def finished_at(self, now: float) -> float | None:
        if self.stopped_at is not None:
            return self.stopped_at
        return self.ends_at() if now >= self.ends_at() else None


class SpecError(ValueError):
    """An admin task spec is invalid; answered with HTTP 400."""


def _number(spec: dict[str, Any], key: str, default: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SpecError(f"{key} must be a non-negative number")
    return float(value)


@dataclass
class Task:
    task_id: str
    duration_s: float = defaults.TASK_DURATION_S
    final_status: int = defaults.TASK_FINAL_STATUS
    lag_s: float = 0.0
    defects: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    resolved: int = 0
    dismissed: int = 0
    task_name: str = ""
    git_url: str = ""
    git_branch: str = "master"
    # Progress shown before the first scan; None = never checked.
    initial: Progress = NEVER_RUN
    faults: list[dict[str, Any]] = field(default_factory=list)
    # Scans started by the emulator itself every ``schedule_s`` seconds of its clock (None: never), like a
    # CodeArts execution plan; the first one ``schedule_s`` after the task was created.
    schedule_s: float | None = None
    next_scheduled: float | None = None
    scan: Scan | None = None
    # Every execution record of this task, oldest first (exec_id -> scan); ``scan`` is the latest.
    executions: dict[str, Scan] = field(default_factory=dict)
    created_wall: datetime = field(default_factory=lambda: datetime.now(UTC))

    SPEC_KEYS = frozenset(
        {"task_id", "duration_s", "final_status", "running", "lag_s", "defects", "faults", "initial_status"}
        | {"task_name", "git_url", "git_branch", "schedule_s"}
    )

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Task:
        unknown = sorted(set(spec) - cls.SPEC_KEYS)
        if unknown:  # a typo must not silently give a different scenario
            raise SpecError(f"unknown task spec keys {unknown}; known: {sorted(cls.SPEC_KEYS)}")
        task_id = spec.get("task_id") or uuid.uuid4().hex
        if not isinstance(task_id, str):
            raise SpecError("task_id must be a string")
        final_status = spec.get("final_status", defaults.TASK_FINAL_STATUS)
        if final_status not in TERMINAL:
            raise SpecError("final_status must be 1 (failed), 2 (success) or 3 (stopped)")
        initial_status = spec.get("initial_status")
        if initial_status is not None and initial_status not in TERMINAL:
            raise SpecError("initial_status must be null, 1, 2 or 3")
        defects = spec.get("defects") or {}
        if not isinstance(defects, dict) or any(
            not isinstance(defects.get(name, 0), int) or defects.get(name, 0) < 0 for name in SEVERITIES
        ):
            raise SpecError("defects must map critical/major/minor/suggestion to non-negative integers")
        faults = spec.get("faults") or []
        if not isinstance(faults, list):
            raise SpecError("faults must be a list")
        schedule_s = spec.get("schedule_s")
        if schedule_s is not None and (
            isinstance(schedule_s, bool) or not isinstance(schedule_s, (int, float)) or schedule_s <= 0
        ):
            raise SpecError("schedule_s must be a positive number (or null: no schedule)")
        return cls(
            task_id=task_id,
            duration_s=_number(spec, "duration_s", defaults.TASK_DURATION_S),
            final_status=final_status,
            lag_s=_number(spec, "lag_s", 0.0),
            defects={name: int(defects.get(name, 0)) for name in SEVERITIES},
            resolved=int(defects.get("resolved", 0)),
            dismissed=int(defects.get("dismissed", 0)),
            task_name=str(spec.get("task_name") or f"emulated-{task_id}"),
            git_url=str(spec.get("git_url") or f"https://codehub.example.com/demo/{task_id}.git"),
            git_branch=str(spec.get("git_branch") or "master"),
            initial=NEVER_RUN if initial_status is None else terminal_progress(initial_status),
            faults=faults,
            schedule_s=None if schedule_s is None else float(schedule_s),
        )

    def is_running(self, now: float) -> bool:
        return self.scan is not None and self.scan.is_running(now)

    def progress(self, now: float) -> Progress:
        return self.scan.progress(now) if self.scan else self.initial

    def start_scan(
        self,
        now: float,
        *,
        duration_s: float | None = None,
        final_status: int | None = None,
        defects: dict[str, int] | None = None,
        origin: str = "run",
    ) -> Scan:
        """Start a scan; the caller has checked that none is running.

        ``duration_s``/``final_status``/``defects`` override the task's for this scan only; ``defects`` also
        become the task's counts from now on (what the defects summary reports).
        """
        if defects is not None:
            self.defects = {name: int(defects.get(name, 0)) for name in SEVERITIES}
        self.scan = Scan(
            exec_id=uuid.uuid4().hex,
            started_at=now,
            lag_s=self.lag_s,
            duration_s=self.duration_s if duration_s is None else duration_s,
            final_status=self.final_status if final_status is None else final_status,
            previous=self.progress(now),
            defects=dict(self.defects),
            origin=origin,
        )
        self.executions[self.scan.exec_id] = self.scan
        return self.scan

    def catch_up(self, now: float) -> None:
        """Start the scheduled scans due by ``now``, each at its own moment (skipped while one is running)."""
        if self.schedule_s is None or self.next_scheduled is None:
            return
        while self.next_scheduled <= now:
            moment = self.next_scheduled
            if not self.is_running(moment):
                self.start_scan(moment, origin="schedule")
            self.next_scheduled = moment + self.schedule_s

    def finished_scans(self, now: float) -> list[Scan]:
        """Executions that have ended by ``now`` (succeeded, failed or stopped), oldest start first."""
        return [scan for scan in self.executions.values() if scan.finished_at(now) is not None]

    def stop_scan(self, now: float) -> bool:
        if self.scan is None or not self.scan.is_running(now):
            return False
        self.scan.stopped_at = now
        return True

    def to_admin_json(self, now: float) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "duration_s": self.duration_s,
            "final_status": self.final_status,
            "lag_s": self.lag_s,
            "defects": dict(self.defects),
            "faults": self.faults,
            "running": self.is_running(now),
            "last_exec_id": self.scan.exec_id if self.scan else None,
            "schedule_s": self.schedule_s,
            "executions": [scan.to_admin_json(now) for scan in self.executions.values()],
            **self.progress(now).to_json(),
        }


class TaskRegistry:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.tasks: dict[str, Task] = {}

    def now(self) -> float:
        return self.clock()

    def put(self, task: Task, running: bool = False) -> Task:
        self.tasks[task.task_id] = task
        if task.schedule_s is not None:
            task.next_scheduled = self.now() + task.schedule_s
        if running:
            task.start_scan(self.now())
        return task

    def get(self, task_id: str) -> Task | None:
        task = self.tasks.get(task_id)
        if task is not None:
            task.catch_up(self.now())
        return task

    def clear(self) -> None:
        self.tasks.clear()
