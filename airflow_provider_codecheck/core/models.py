"""Typed results of CodeArts Check operations."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class TaskStatus(enum.Enum):
    """``task_status`` of ``GET /v2/tasks/{task_id}/progress``; ``NOT_STARTED`` stands for a null status."""

    NOT_STARTED = "not_started"
    CHECKING = "checking"
    FAILED = "failed"
    SUCCESS = "success"
    STOPPED = "stopped"

    @classmethod
    def from_wire(cls, value: int | None) -> TaskStatus:
        """Map the wire value; raises KeyError for a value the API does not document."""
        if value is not None and type(value) is not int:
            raise KeyError(value)  # JSON true/false or 2.0 would otherwise hash like 1/0/2
        return _FROM_WIRE[value]

    @property
    def wire(self) -> int | None:
        return _TO_WIRE[self]

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.FAILED, TaskStatus.SUCCESS, TaskStatus.STOPPED)


_FROM_WIRE: dict[int | None, TaskStatus] = {
    None: TaskStatus.NOT_STARTED,
    0: TaskStatus.CHECKING,
    1: TaskStatus.FAILED,
    2: TaskStatus.SUCCESS,
    3: TaskStatus.STOPPED,
}
_TO_WIRE = {status: wire for wire, status in _FROM_WIRE.items()}

SEVERITIES = ("critical", "major", "minor", "suggestion")


@dataclass(frozen=True)
class TaskProgress:
    status: TaskStatus
    ratio: int | None
    """Progress in percent (0-100), or None when the service reports none (failed, stopped, never run)."""
    info: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class RunResult:
    exec_id: str


@dataclass(frozen=True)
class DefectSummary:
    """Subset of ``GET /v2/tasks/{task_id}/defects-summary``; counts by severity are ints here."""

    issue_count: int | None
    counts: dict[str, int]
    code_quality: float | None
    last_exec_time: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class DefectStatistic:
    severity: dict[str, int]
    status: dict[str, int]
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class IamToken:
    token: str = field(repr=False)
    expires_at: float
    """Expiry as a Unix timestamp."""
    issued_at: float


@dataclass(frozen=True)
class CheckRecord:
    """One finished scan from ``GET /v2/{project_id}/tasks/{task_id}/checkrecord`` (the task's scan history).

    ``job_id`` is the execution id (the run API's ``exec_id``); the docs send it for quality-gate scans and
    not for version-level ones. ``issue_counts`` uses the record's own names: critical, serious, normal, prompt.
    """

    job_id: str | None
    check_time: str | None
    """When the scan started, as the service wrote it (UTC ``yyyy-MM-ddTHH:mm:ssZ``)."""
    check_end_time: str | None
    issue_counts: dict[str, int]
    started: datetime | None
    """``check_time`` parsed (aware, UTC), or None when absent or unreadable."""
    ended: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def scan_id(self) -> str | None:
        """Stable identity of the scan: ``job:<job_id>``, else ``start:<check_time>`` (None: neither given).

        The execution id is unique per execution (the docs); without it, the start time is fixed once the scan
        started, and a task runs one scan at a time (a second run is refused with CC.00050015).
        """
        if self.job_id:
            return f"job:{self.job_id}"
        if self.check_time:
            return f"start:{self.check_time}"
        return None


@dataclass(frozen=True)
class CheckRecordPage:
    records: list[CheckRecord]
    total: int | None
    """What the service says the filter matched (may exceed ``len(records)``: more pages)."""
