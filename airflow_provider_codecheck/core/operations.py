"""The CodeArts Check operations this provider uses: how to ask, and how to read the answer."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from airflow_provider_codecheck.core.errors import InvalidResponseError, InvalidTaskIdError
from airflow_provider_codecheck.core.http import ApiCall, quote_path_param
from airflow_provider_codecheck.core.models import (
    SEVERITIES,
    DefectStatistic,
    DefectSummary,
    RunResult,
    TaskProgress,
    TaskStatus,
)
from airflow_provider_codecheck.core.responses import require_dict

T = TypeVar("T")

MAX_TASK_ID_LENGTH = 128
_FORBIDDEN_ID_CHARS = re.compile(r"[\s\x00-\x1f\x7f/\\]")
_RATIO_RE = re.compile(r"^\s*(\d{1,3})(?:\.\d+)?\s*%?\s*$")


@dataclass(frozen=True)
class Operation(Generic[T]):
    """One API operation: a named call plus the parser of its decoded JSON body."""

    name: str
    call: ApiCall
    parse: Callable[[Any], T]


def validate_task_id(task_id: object) -> str:
    """Reject ids that could escape the URL path or are not ids at all, before any request is sent."""
    if not isinstance(task_id, str):
        raise InvalidTaskIdError(f"CodeArts task id must be a string, got {type(task_id).__name__}")
    if not task_id:
        raise InvalidTaskIdError("CodeArts task id is empty")
    if len(task_id) > MAX_TASK_ID_LENGTH:
        raise InvalidTaskIdError(
            f"CodeArts task id is {len(task_id)} characters long; at most {MAX_TASK_ID_LENGTH}"
        )
    if _FORBIDDEN_ID_CHARS.search(task_id) or ".." in task_id:
        raise InvalidTaskIdError(
            f"CodeArts task id {task_id!r} contains a slash, '..', whitespace or a control character"
        )
    return task_id


def _task_path(task_id: str, suffix: str) -> str:
    return f"/v2/tasks/{quote_path_param(validate_task_id(task_id))}/{suffix}"


def parse_ratio(value: Any) -> int | None:
    """Percent done from ``progress.ratio`` ("NN%"); None when absent or odd.

    The ratio is informative only (logs, events): an odd value never turns a valid verdict into an error.
    The raw answer stays in ``TaskProgress.raw``.
    """
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    match = _RATIO_RE.match(str(value))
    if not match or int(match.group(1)) > 100:
        return None
    return int(match.group(1))


def _optional_str(value: Any) -> str | None:
    return None if value is None or isinstance(value, (dict, list)) else str(value)


def parse_progress(body: Any) -> TaskProgress:
    """Read ``task_status`` (the verdict, strictly) and, leniently, the informative ``progress`` object.

    An absent ``task_status`` is read as null ("never checked"), as the SDK does: the service omits null
    fields. A present but undocumented value (7, "2", true) is an error: the verdict must not be guessed.
    """
    data = require_dict(body, "progress")
    raw_status = data.get("task_status")
    try:
        status = TaskStatus.from_wire(raw_status)
    except (KeyError, TypeError):
        raise InvalidResponseError(f"undocumented task_status {raw_status!r}") from None
    progress = data.get("progress")
    if not isinstance(progress, dict):
        progress = {}
    return TaskProgress(
        status=status,
        ratio=parse_ratio(progress.get("ratio")),
        info=_optional_str(progress.get("info")),
        raw=data,
    )


def parse_run(body: Any) -> RunResult:
    exec_id = require_dict(body, "run").get("exec_id")
    if not exec_id or not isinstance(exec_id, str):
        raise InvalidResponseError("run reply has no exec_id")
    return RunResult(exec_id=exec_id)


def _count(value: Any, name: str) -> int:
    # The service sends some counts as strings ("3") and some as ints.
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON Infinity
        raise InvalidResponseError(f"{name} {value!r} is not a count") from None


def parse_defects_summary(body: Any) -> DefectSummary:
    data = require_dict(body, "defects-summary")
    counts = {sev: _count(data.get(f"{sev}_count", 0) or 0, f"{sev}_count") for sev in SEVERITIES}
    issue_count = data.get("issue_count")
    quality = data.get("code_quality")
    try:
        code_quality = None if quality in (None, "") else float(quality)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float range
        raise InvalidResponseError(f"code_quality {quality!r} is not a number") from None
    return DefectSummary(
        issue_count=None if issue_count is None else _count(issue_count, "issue_count"),
        counts=counts,
        code_quality=code_quality,
        last_exec_time=_optional_str(data.get("last_exec_time")),
        raw=data,
    )


def _count_map(data: dict[str, Any], key: str, names: tuple[str, ...]) -> dict[str, int]:
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise InvalidResponseError(f"defects-statistic {key} is not an object")
    return {name: _count(section.get(name, 0) or 0, f"{key}.{name}") for name in names}


def parse_defects_statistic(body: Any) -> DefectStatistic:
    data = require_dict(body, "defects-statistic")
    return DefectStatistic(
        severity=_count_map(data, "severity", SEVERITIES),
        status=_count_map(data, "status", ("unresolved", "resolved", "dismissed")),
        raw=data,
    )


def _ignore(body: Any) -> None:
    return None


def get_task_progress(task_id: str, job_id: str | None = None) -> Operation[TaskProgress]:
    query = (("job_id", job_id),) if job_id else ()
    return Operation(
        "get_task_progress", ApiCall("GET", _task_path(task_id, "progress"), query), parse_progress
    )


def run_task(task_id: str, body: dict[str, Any] | None = None) -> Operation[RunResult]:
    # Not idempotent: a retry after an ambiguous failure could start a second scan.
    call = ApiCall("POST", _task_path(task_id, "run"), body=body, idempotent=False)
    return Operation("run_task", call, parse_run)


def stop_task(task_id: str) -> Operation[None]:
    # Stopping twice is harmless, so it may be retried.
    return Operation("stop_task", ApiCall("POST", _task_path(task_id, "stop")), _ignore)


def get_defects_summary(task_id: str) -> Operation[DefectSummary]:
    call = ApiCall("GET", _task_path(task_id, "defects-summary"))
    return Operation("get_defects_summary", call, parse_defects_summary)


def get_defects_statistic(task_id: str) -> Operation[DefectStatistic]:
    call = ApiCall("GET", _task_path(task_id, "defects-statistic"))
    return Operation("get_defects_statistic", call, parse_defects_statistic)
