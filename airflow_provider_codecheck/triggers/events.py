"""CodeCheckScanEventTrigger: one Airflow asset event per finished CodeArts Check scan (event-driven scheduling).

Use it in an ``AssetWatcher`` (Airflow >= 3.0). It watches the task's scan history, so it sees every scan,
whoever started it: CodeArts on a commit, a merge request, an execution plan, a pipeline, or Airflow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.errors import CodeCheckError
from airflow_provider_codecheck.core.models import CheckRecord, DefectSummary, TaskProgress
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
from airflow_provider_codecheck.provider_info import DEFAULT_CONN_ID

if TYPE_CHECKING:  # type-checked against the base both Airflow lines have (mypy runs on 3.3 and 2.11)
    from airflow.triggers.base import BaseTrigger as _EventTriggerBase

    EVENT_TRIGGERS_SUPPORTED: bool
else:
    try:  # Airflow >= 3.0
        from airflow.triggers.base import BaseEventTrigger as _EventTriggerBase

        EVENT_TRIGGERS_SUPPORTED = True
    except ImportError:  # Airflow 2.x: no event-driven scheduling
        from airflow.triggers.base import BaseTrigger as _EventTriggerBase

        EVENT_TRIGGERS_SUPPORTED = False

from airflow.triggers.base import TriggerEvent

if TYPE_CHECKING:
    from airflow_provider_codecheck.transport.aio import AsyncClient

STATE_KEY = "codecheck_scan_watermark"
"""Key of the watermark in the asset state store (Airflow >= 3.3)."""
STATE_VERSION = 1
LOOKBACK = timedelta(hours=6)
"""How far before the newest scan seen the history is read again (scans of a task run one at a time; the
margin covers clock skew and a scan that started earlier but is listed late)."""
MAX_SEEN = 2000
"""At most this many scan ids are remembered (the newest); far more than one query window holds."""
ERROR_BACKOFF_MAX_S = 300.0


class StateStoreUnavailableError(RuntimeError):
    """The asset state store could not be read: wait and retry (never start afresh on a failed read)."""


class CodeCheckScanEventTrigger(_EventTriggerBase):
    """Fire one event per finished scan of a CodeArts Check task (for ``AssetWatcher``; Airflow >= 3.0).

    Every ``poll_interval`` seconds it reads the task's scan history,
    ``GET /v2/{project_id}/tasks/{task_id}/checkrecord`` (one request per poll; the CodeArts project UUID comes
    from the connection extra ``project_id``), and, for each scan not seen before, the execution's status
    (``progress?job_id=``) and summary (``defects-summary?job_id=``, with the service's quality-gate verdict
    ``is_access``): two more requests per new scan only.

    **Scan identity** (``scan_id`` in every payload): ``job:<job_id>``, the execution id the history lists per
    scan (the CheckRecord page: "执行ID, unique per execution", the run API's ``exec_id``); for a record
    without it (the docs: sent for quality-gate scans, not for version-level ones) ``start:<check_time>``, the
    scan's start time, fixed once it started and unique per task because a task runs one scan at a time (a
    second run is refused with CC.00050015). ``check_end_time`` is not used: it is not known until the end.

    **Delivery: at least once.** Consumers should be idempotent on ``scan_id``. No event is fired for scans
    that had finished before the watcher first started (the first poll only records them). The watermark (scan
    ids seen, and the start of the window read) is kept in the asset state store where Airflow offers it to
    triggers (3.3: ``self.asset_state_store``, injected by the triggerer) and advanced for a scan only at a
    poll at least ``commit_delay_s`` after its event left the trigger, so that the triggerer has synced the
    event (about 1 s) before the watermark moves: a restart before that replays the scan (a duplicate), never
    loses it. Without a state store (Airflow 3.0-3.2, or a watcher with no asset) the watermark lives in
    memory: a restart starts afresh, without replay, and scans that finished while the trigger was not running
    get no event. See docs/event-driven.md.

    Payload: ``scan_id``, ``codecheck_task_id``, ``job_id``, ``check_time``, ``check_end_time``,
    ``task_status`` (0-3), ``status`` (success/failed/stopped), ``ratio``, ``issue_counts`` (from the history:
    critical/serious/normal/prompt), ``defect_counts`` (critical/major/minor/suggestion), ``issue_count``,
    ``code_quality``, ``risk_coefficient``, ``is_access`` (the gate verdict: true/false, null if unknown) and
    ``is_access_raw``; values the service did not give are null.

    :param codecheck_task_id: the CodeArts Check task to watch.
    :param codecheck_conn_id: Airflow connection id (extra ``project_id`` required).
    :param poll_interval: seconds between reads of the history.
    :param only_success: fire only for successful scans (task_status 2); others are recorded as seen.
    """

    commit_delay_s: float = 5.0
    """Seconds after an event is yielded before the watermark may include it (class attribute, not a kwarg)."""

    def __init__(
        self,
        codecheck_task_id: str,
        codecheck_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 60.0,
        only_success: bool = False,
    ) -> None:
        if not EVENT_TRIGGERS_SUPPORTED:
            raise RuntimeError(
                "CodeCheckScanEventTrigger needs Airflow >= 3.0 (BaseEventTrigger, AssetWatcher); this Airflow "
                "has no event-driven scheduling. On Airflow 2 use CodeCheckTaskSensor on a schedule instead."
            )
        super().__init__()
        self.codecheck_task_id = codecheck_task_id
        self.codecheck_conn_id = codecheck_conn_id
        self.poll_interval = float(poll_interval)
        self.only_success = bool(only_success)
        # In-memory watermark (also the copy of the stored one) and events not yet committed to it.
        self._state: dict[str, Any] | None = None
        self._uncommitted: list[tuple[float, str, str | None]] = []  # (yielded at, scan id, check_time)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "codecheck_task_id": self.codecheck_task_id,
                "codecheck_conn_id": self.codecheck_conn_id,
                "poll_interval": self.poll_interval,
                "only_success": self.only_success,
            },
        )

    def __repr__(self) -> str:
        return f"<CodeCheckScanEventTrigger task={self.codecheck_task_id!r} conn={self.codecheck_conn_id!r}>"

    # --- the loop -------------------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll forever; never return (a returning watcher is re-created by the triggerer, state lost)."""
        failures = 0
        while True:
            try:
                ops.validate_task_id(self.codecheck_task_id)
                hook = CodeCheckHook(self.codecheck_conn_id)
                async with hook.async_client() as client:
                    project_id = ops.validate_project_id(client.settings.project_id)
                    while True:
                        async for event in self._poll_once(client, project_id):
                            yield event
                        failures = 0
                        await asyncio.sleep(self.poll_interval)
            except (
                CodeCheckError,
                AirflowNotFoundException,
                ValueError,
                StateStoreUnavailableError,
            ) as error:
                # Bad input or a failing service must not end the watcher: log, back off, try again.
                failures += 1
                delay = min(ERROR_BACKOFF_MAX_S, self.poll_interval * min(2 ** (failures - 1), 8))
                self.log.warning(
                    "Watching CodeArts task %s failed (%s); retrying in %.0f s",
                    self.codecheck_task_id,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _poll_once(self, client: AsyncClient, project_id: str) -> AsyncIterator[TriggerEvent]:
        if self._state is None:
            loaded = await self._load_state()
            if loaded is None:
                await self._baseline(client, project_id)
                return
            self._state = loaded
        await self._commit_due()
        state = self._state
        seen: dict[str, str | None] = state["seen"]
        in_flight = {scan_id for _, scan_id, _ in self._uncommitted}
        since = ops.parse_service_time(state["since"])
        page = await client.execute(ops.list_check_records(project_id, self.codecheck_task_id, since))
        if page.total is not None and page.total > len(page.records):
            self.log.warning(
                "CodeArts task %s lists %d scans since %s but returned %d; some may be missed",
                self.codecheck_task_id,
                page.total,
                state["since"],
                len(page.records),
            )
        newest = _newest(page.records)
        fresh = [
            record
            for record in page.records
            if record.scan_id is not None and record.scan_id not in seen and record.scan_id not in in_flight
        ]
        for record in sorted(fresh, key=_order):
            payload = await self._describe(client, record, latest=record is newest)
            scan_id = str(record.scan_id)
            if self.only_success and payload["status"] != "success":
                self.log.debug(
                    "Scan %s of %s ended %s: no event", scan_id, self.codecheck_task_id, payload["status"]
                )
                self._uncommitted.append((float("-inf"), scan_id, record.check_time))  # commit at once
                continue
            self.log.info(
                "Scan %s of CodeArts task %s finished: %s", scan_id, self.codecheck_task_id, payload["status"]
            )
            self._uncommitted.append((time.monotonic(), scan_id, record.check_time))
            yield TriggerEvent(payload)
        await self._commit_due()

    async def _baseline(self, client: AsyncClient, project_id: str) -> None:
        """First start: every scan already in the history is seen; no event for any of them."""
        since = datetime.now(UTC) - LOOKBACK
        page = await client.execute(ops.list_check_records(project_id, self.codecheck_task_id, since))
        seen = {r.scan_id: r.check_time for r in page.records if r.scan_id is not None}
        self._state = {"v": STATE_VERSION, "since": ops.format_service_time(since), "seen": seen}
        self.log.info(
            "Watching CodeArts task %s from now on (%d earlier scans ignored)",
            self.codecheck_task_id,
            len(seen),
        )
        await self._save_state()

    async def _commit_due(self) -> None:
        """Move the events old enough into the watermark, slide the window, store it."""
        assert self._state is not None
        now = time.monotonic()
        due = [item for item in self._uncommitted if now - item[0] >= self.commit_delay_s]
        if not due:
            return
        self._uncommitted = [item for item in self._uncommitted if now - item[0] < self.commit_delay_s]
        seen: dict[str, str | None] = self._state["seen"]
        for _, scan_id, check_time in due:
            seen[scan_id] = check_time
        starts = [ops.parse_service_time(t) for t in seen.values()]
        known = [s for s in starts if s is not None]
        since = ops.parse_service_time(self._state["since"])
        if known and since is not None:
            # Slide the window forward (never back), then forget scans that started before it.
            since = max(since, max(known) - LOOKBACK)
            self._state["since"] = ops.format_service_time(since)
            seen = {
                scan_id: check_time
                for scan_id, check_time in seen.items()
                if (start := ops.parse_service_time(check_time)) is None or start >= since
            }
        if len(seen) > MAX_SEEN:
            seen = dict(list(seen.items())[-MAX_SEEN:])
        self._state["seen"] = seen
        await self._save_state()

    # --- one scan -------------------------------------------------------------------------------------------

    async def _describe(self, client: AsyncClient, record: CheckRecord, latest: bool) -> dict[str, Any]:
        progress: TaskProgress | None = None
        summary: DefectSummary | None = None
        try:
            if record.job_id:
                progress = await client.get_task_progress(self.codecheck_task_id, record.job_id)
                summary = await client.execute(ops.get_scan_summary(self.codecheck_task_id, record.job_id))
            elif latest:  # no execution id: the task's own status is this scan's only while it is the newest
                progress = await client.get_task_progress(self.codecheck_task_id)
                summary = await client.get_defects_summary(self.codecheck_task_id)
        except CodeCheckError as error:
            if error.retryable:
                raise  # transient: the scan stays unseen and is described again at the next poll
            self.log.warning(
                "No details for scan %s of %s: %s", record.scan_id, self.codecheck_task_id, error
            )
        raw = summary.raw if summary is not None else {}
        return {
            "scan_id": record.scan_id,
            "codecheck_task_id": self.codecheck_task_id,
            "job_id": record.job_id,
            "check_time": record.check_time,
            "check_end_time": record.check_end_time,
            "task_status": progress.status.wire if progress is not None else None,
            "status": progress.status.value if progress is not None and progress.status.is_terminal else None,
            "ratio": progress.ratio if progress is not None else None,
            "issue_counts": dict(record.issue_counts),
            "defect_counts": dict(summary.counts) if summary is not None else None,
            "issue_count": summary.issue_count if summary is not None else None,
            "code_quality": summary.code_quality if summary is not None else None,
            "risk_coefficient": _number(raw.get("risk_coefficient")),
            "is_access": ops.parse_gate_verdict(raw.get("is_access")),
            "is_access_raw": None if raw.get("is_access") is None else str(raw.get("is_access")),
        }

    # --- the state store ------------------------------------------------------------------------------------

    def _accessors(self) -> list[Any]:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return []
        # One trigger row can watch several assets (identical watchers are shared): keep them all in step.
        by_name = getattr(store, "_by_name", None)
        by_uri = getattr(store, "_by_uri", None)
        if isinstance(by_name, dict) and isinstance(by_uri, dict):
            return [*by_name.values(), *by_uri.values()]
        return [store]

    async def _load_state(self) -> dict[str, Any] | None:
        """The stored watermark, None when there is none (first start, or no store). Read errors propagate."""
        for accessor in self._accessors():
            try:
                value = await accessor.aget(STATE_KEY)
            except Exception as error:
                raise StateStoreUnavailableError(f"reading the watermark failed: {error}") from error
            if _valid_state(value):
                return {"v": STATE_VERSION, "since": value["since"], "seen": dict(value["seen"])}
        return None

    async def _save_state(self) -> None:
        assert self._state is not None
        for accessor in self._accessors():
            try:
                await accessor.aset(STATE_KEY, self._state)
            except Exception as error:  # the in-memory copy stays right; the next commit writes it again
                self.log.warning("Could not store the watermark of %s: %s", self.codecheck_task_id, error)


def _valid_state(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("v") == STATE_VERSION
        and isinstance(value.get("since"), str)
        and ops.parse_service_time(value["since"]) is not None
        and isinstance(value.get("seen"), dict)
    )


def _order(record: CheckRecord) -> tuple[datetime, datetime, str]:
    floor = datetime.min.replace(tzinfo=UTC)
    return (record.ended or record.started or floor, record.started or floor, str(record.scan_id))


def _newest(records: list[CheckRecord]) -> CheckRecord | None:
    dated = [record for record in records if record.started is not None]
    return max(dated, key=_order) if dated else (records[0] if records else None)


def _number(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
