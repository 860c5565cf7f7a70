"""The CodeArts Check operations this provider uses: how to ask, and how to read the answer.

Each operation is declared once, here: a function building its ``Operation`` (the call and the parser of the
reply), listed in ``NamedOperations``. The requests client, the aiohttp client and the hook inherit
``NamedOperations``, so ``x.get_task_progress(task_id)`` is ``x.execute(get_task_progress(task_id))`` on each
(awaited on the aiohttp client); none of them names an operation itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from airflow_provider_codecheck.core.errors import InvalidResponseError, InvalidTaskIdError
from airflow_provider_codecheck.core.http import ApiCall, quote_path_param
from airflow_provider_codecheck.core.models import (
    SEVERITIES,
    CheckRecord,
    CheckRecordPage,
    DefectStatistic,
    DefectSummary,
    RunResult,
    TaskProgress,
    TaskStatus,
)
from airflow_provider_codecheck.core.responses import require_dict

T = TypeVar("T")
P = ParamSpec("P")

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
    """``GET /v2/tasks/{task_id}/progress``: the latest scan's status, ratio and info (of execution ``job_id``
    when given)."""
    query = (("job_id", job_id),) if job_id else ()
    return Operation(
        "get_task_progress", ApiCall("GET", _task_path(task_id, "progress"), query), parse_progress
    )


def run_task(task_id: str, body: dict[str, Any] | None = None) -> Operation[RunResult]:
    """``POST /v2/tasks/{task_id}/run``: start a scan; its ``exec_id``. Never retried once it may have run."""
    # Not idempotent: a retry after an ambiguous failure could start a second scan.
    call = ApiCall("POST", _task_path(task_id, "run"), body=body, idempotent=False)
    return Operation("run_task", call, parse_run)


def stop_task(task_id: str) -> Operation[None]:
    """``POST /v2/tasks/{task_id}/stop``: stop the running scan."""
    # Stopping twice is harmless, so it may be retried.
    return Operation("stop_task", ApiCall("POST", _task_path(task_id, "stop")), _ignore)


def get_defects_summary(task_id: str) -> Operation[DefectSummary]:
    """``GET /v2/tasks/{task_id}/defects-summary``: the latest scan's defect counts and code quality."""
    call = ApiCall("GET", _task_path(task_id, "defects-summary"))
    return Operation("get_defects_summary", call, parse_defects_summary)


def get_defects_statistic(task_id: str) -> Operation[DefectStatistic]:
    """``GET /v2/tasks/{task_id}/defects-statistic``: defect counts by severity and by status."""
    call = ApiCall("GET", _task_path(task_id, "defects-statistic"))
    return Operation("get_defects_statistic", call, parse_defects_statistic)


# --- scan history (the event trigger) -------------------------------------------------------------------

CHECK_RECORD_MAX_LIMIT = 1000
"""The CheckRecord pages: ``limit`` 1-1000."""
CHECK_RECORD_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""The CheckRecord pages: UTC ``yyyy-MM-ddTHH:mm:ssZ`` (filters and record times)."""
_LEGACY_TIME_FORMATS = (CHECK_RECORD_TIME_FORMAT, "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%fZ")
ISSUE_COUNT_NAMES = ("critical", "serious", "normal", "prompt")
"""CheckRecordIssueCountsInfo: critical, serious (major), normal (minor), prompt (suggestion)."""


def validate_project_id(project_id: object) -> str:
    """The CodeArts project UUID in ``/v2/{project_id}/...``: the same path-safety rules as a task id."""
    if not isinstance(project_id, str) or not project_id:
        raise InvalidTaskIdError(
            "the CodeArts project id is not set: put the 32-character CodeArts project UUID in the "
            "connection extra 'project_id' (the scan history API needs it)"
        )
    try:
        return validate_task_id(project_id)
    except InvalidTaskIdError as error:
        raise InvalidTaskIdError(str(error).replace("task id", "project id")) from None


def parse_service_time(value: Any) -> datetime | None:
    """A time as the service writes it (UTC ``yyyy-MM-ddTHH:mm:ssZ``; older pages ``yyyy-MM-dd HH:mm:ss``)."""
    if not isinstance(value, str) or not value.strip():
        return None
    for fmt in _LEGACY_TIME_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def format_service_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(CHECK_RECORD_TIME_FORMAT)


def _parse_check_record(item: Any) -> CheckRecord:
    if not isinstance(item, dict):
        raise InvalidResponseError(f"checkrecord data item is a {type(item).__name__}, expected an object")
    counts = item.get("issue_counts") or {}
    if not isinstance(counts, dict):
        raise InvalidResponseError("checkrecord issue_counts is not an object")
    # The current page says job_id; the 2025-08 intl/zh-cn page spells it jobId.
    job_id = item.get("job_id", item.get("jobId"))
    check_time = _optional_str(item.get("check_time"))
    check_end_time = _optional_str(item.get("check_end_time"))
    return CheckRecord(
        job_id=str(job_id) if job_id not in (None, "") and not isinstance(job_id, (dict, list)) else None,
        check_time=check_time,
        check_end_time=check_end_time,
        issue_counts={
            name: _count(counts.get(name, 0) or 0, f"issue_counts.{name}") for name in ISSUE_COUNT_NAMES
        },
        started=parse_service_time(check_time),
        ended=parse_service_time(check_end_time),
        raw=item,
    )


def parse_check_records(body: Any) -> CheckRecordPage:
    data = require_dict(body, "checkrecord")
    items = data.get("data")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise InvalidResponseError("checkrecord data is not a list")
    total = data.get("total")
    return CheckRecordPage(
        records=[_parse_check_record(item) for item in items],
        total=None if total is None else _count(total, "total"),
    )


def list_check_records(
    project_id: str,
    task_id: str,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    limit: int = CHECK_RECORD_MAX_LIMIT,
    offset: int = 0,
) -> Operation[CheckRecordPage]:
    """``GET /v2/{project_id}/tasks/{task_id}/checkrecord``: finished scans, filtered by start (``start_time``)
    and end (``end_time``). ``offset`` is sent as given (the pages disagree on page index vs. item offset)."""
    if not 1 <= limit <= CHECK_RECORD_MAX_LIMIT:
        raise ValueError(f"limit must be 1-{CHECK_RECORD_MAX_LIMIT}")
    query: list[tuple[str, str]] = [("limit", str(limit)), ("offset", str(offset))]
    if start_time is not None:
        query.append(("start_time", format_service_time(start_time)))
    if end_time is not None:
        query.append(("end_time", format_service_time(end_time)))
    path = (
        f"/v2/{quote_path_param(validate_project_id(project_id))}"
        f"/tasks/{quote_path_param(validate_task_id(task_id))}/checkrecord"
    )
    return Operation("list_check_records", ApiCall("GET", path, tuple(query)), parse_check_records)


def get_scan_summary(task_id: str, job_id: str | None = None) -> Operation[DefectSummary]:
    """``GET /v2/tasks/{task_id}/defects-summary?job_id=...``: the summary of one execution (ShowTaskDetailV2
    lists ``job_id``), or the task's latest when ``job_id`` is None; its ``raw`` holds ``is_access`` (the
    verdict of the quality gate configured on the task in CodeArts), ``risk_coefficient`` and the times."""
    if not job_id:
        return get_defects_summary(task_id)
    call = ApiCall("GET", _task_path(task_id, "defects-summary"), (("job_id", job_id),))
    return Operation("get_scan_summary", call, parse_defects_summary)


def parse_number(value: Any) -> float | None:
    """A number the service may send as a JSON number or a string; None when absent or not a number."""
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):
        return None


SCAN_SUMMARY_KEYS = ("is_access", "issue_count", "code_quality", "risk_coefficient", "last_check_time")
"""The defects-summary fields the operator and the sensor report (XCom keys of the same names)."""


def scan_summary_fields(summary: DefectSummary | None) -> dict[str, Any]:
    """``SCAN_SUMMARY_KEYS`` read from a defects summary, all None without one (not read, or unreadable).

    ``is_access`` is the verdict of the quality gate configured on the task in CodeArts (True passed, False
    failed, None when the service gave none or an undocumented value); ``code_quality`` and
    ``risk_coefficient`` are floats; ``last_check_time`` is the service's text (UTC ``yyyy-MM-ddTHH:mm:ssZ``).
    """
    if summary is None:
        return dict.fromkeys(SCAN_SUMMARY_KEYS)
    raw = summary.raw
    return {
        "is_access": parse_gate_verdict(raw.get("is_access")),
        "issue_count": summary.issue_count,
        "code_quality": summary.code_quality,
        "risk_coefficient": parse_number(raw.get("risk_coefficient")),
        "last_check_time": _optional_str(raw.get("last_check_time")),
    }


def parse_gate_verdict(value: Any) -> bool | None:
    """``is_access`` of the defects summary ("gate passed?", a string): True/False, None when absent or odd."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else ""
    if text in ("1", "true", "yes", "pass", "passed"):
        return True
    if text in ("0", "false", "no", "fail", "failed"):
        return False
    return None


# --- the operations by name, on the clients and the hook -------------------------------------------------


class SyncRunner(Protocol):
    def execute(self, op: Operation[T]) -> T: ...


class AsyncRunner(Protocol):
    def execute(self, op: Operation[T]) -> Coroutine[Any, Any, T]: ...


class NamedOperation(Generic[P, T]):
    """A method running the operation ``build`` makes: ``x.name(*args)`` is ``x.execute(build(*args))``.

    Typed as ``build`` is, returning what ``x.execute`` returns: the result, or a coroutine of it.
    """

    def __init__(self, build: Callable[P, Operation[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, runner: None, owner: type[Any]) -> NamedOperation[P, T]: ...

    # Sync first: a class mypy cannot see (BaseHook under Airflow 2.11) matches both protocols.
    @overload
    def __get__(self, runner: SyncRunner, owner: type[Any]) -> Callable[P, T]: ...

    @overload
    def __get__(self, runner: AsyncRunner, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, runner: Any, owner: type[Any]) -> Any:
        if runner is None:
            return self
        build = self.build

        @functools.wraps(build)
        def run(*args: P.args, **kwargs: P.kwargs) -> Any:
            return runner.execute(build(*args, **kwargs))

        return run


class NamedOperations:
    """The operations callable by name on a client or the hook; each class gives ``execute(op)``."""

    get_task_progress = NamedOperation(get_task_progress)
    run_task = NamedOperation(run_task)
    stop_task = NamedOperation(stop_task)
    get_defects_summary = NamedOperation(get_defects_summary)
    get_defects_statistic = NamedOperation(get_defects_statistic)
    get_scan_summary = NamedOperation(get_scan_summary)
    list_check_records = NamedOperation(list_check_records)
