"""CodeCheckTaskTrigger: waits for a CodeArts Check scan in the triggerer's event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_codecheck.core.errors import (
    CodeCheckError,
    InvalidTaskIdError,
    NotFoundError,
    TransportError,
)
from airflow_provider_codecheck.core.models import DefectSummary, TaskProgress
from airflow_provider_codecheck.core.operations import validate_task_id
from airflow_provider_codecheck.core.settings import console_url
from airflow_provider_codecheck.core.waiting import ScanWait, make_event
from airflow_provider_codecheck.exceptions import CodeCheckConfigurationError
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
from airflow_provider_codecheck.links.codecheck import CONSOLE_URL_XCOM_KEY
from airflow_provider_codecheck.provider_info import DEFAULT_CONN_ID
from airflow_provider_codecheck.results import (
    Verdict,
    checked_event,
    given_id,
    operator_verdict,
    sensor_verdict,
    validate_quality_gate,
)

if TYPE_CHECKING:
    from airflow_provider_codecheck.transport.aio import AsyncClient


class CodeCheckTaskTrigger(BaseTrigger):
    """Poll ``GET /v2/tasks/{task_id}/progress`` until the scan ends; fire one event.

    Its kwargs (what Airflow stores, in plain JSON) hold only ids, times and flags, never a credential:
    the connection is read again, asynchronously, whenever the trigger (re)starts.

    :param codecheck_task_id: the CodeArts Check task id.
    :param codecheck_conn_id: Airflow connection id.
    :param poll_interval: seconds between polls.
    :param deadline: Unix time after which the trigger fires a ``timeout`` event (None: wait forever).
    :param exec_id: id of the run being waited for (reported back in the event).
    :param job_id: optional execution-record id passed to the progress API.
    :param stale_until: Unix time until which a terminal status not preceded by "checking" is taken to be the
        previous run's (set when the waiter just started a run).
    :param cancel_on_kill: stop the scan if a user kills the deferred task (Airflow >= 3.3).
    :param job_id_fallback: if progress does not know ``job_id`` (CC.00050002), follow the task's latest scan
        instead of failing (set by the operator for its own run's exec_id, which certainly exists).
    :param max_poll_interval: longest pause between polls (None: ten intervals, at most 300 s); docs/polling.md.
    :param end_from_trigger: None (default): fire a ``TriggerEvent`` and let a worker resume the task. A dict
        (set by ``start_from_trigger``, docs/start-from-trigger.md): the trigger was started by the scheduler
        with raw, then rendered, template values; it checks them, waits and ends the task itself with
        ``TaskSuccessEvent``/``TaskFailedEvent``/``TaskSkippedEvent`` and the task's XComs. Keys: ``kind``
        (``sensor``/``operator``), ``wait_timeout`` and ``timeout_margin`` (s), ``retries``, ``push_return``
        (do_xcom_push), sensor ``soft_fail``/``never_fail``, operator ``fail_on_failure``/``fail_on_service_gate``.
    :param quality_gate: the operator's ``quality_gate`` (templated there; used with ``end_from_trigger``).
    """

    def __init__(
        self,
        codecheck_task_id: str,
        codecheck_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        exec_id: str | None = None,
        job_id: str | None = None,
        stale_until: float | None = None,
        cancel_on_kill: bool = False,
        job_id_fallback: bool = False,
        max_poll_interval: float | None = None,
        end_from_trigger: dict[str, Any] | None = None,
        quality_gate: Any = None,
    ) -> None:
        super().__init__()
        self.max_poll_interval = max_poll_interval
        # With end_from_trigger the id fields may be unrendered templates here: they are checked in run().
        self.end_from_trigger = end_from_trigger
        self.quality_gate = quality_gate
        self.codecheck_task_id = codecheck_task_id
        self.codecheck_conn_id = codecheck_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.exec_id = exec_id
        self.job_id = job_id
        self.stale_until = stale_until
        self.cancel_on_kill = cancel_on_kill
        self.job_id_fallback = job_id_fallback
        self._use_job_id = True

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "codecheck_task_id": self.codecheck_task_id,
            "codecheck_conn_id": self.codecheck_conn_id,
            "poll_interval": self.poll_interval,
            "deadline": self.deadline,
            "exec_id": self.exec_id,
            "job_id": self.job_id,
            "stale_until": self.stale_until,
            "cancel_on_kill": self.cancel_on_kill,
            "job_id_fallback": self.job_id_fallback,
            "max_poll_interval": self.max_poll_interval,
        }
        # Only when set: a worker's deferral stores exactly the kwargs it always did.
        if self.end_from_trigger is not None:
            kwargs["end_from_trigger"] = self.end_from_trigger
            kwargs["quality_gate"] = self.quality_gate
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def __repr__(self) -> str:
        return f"<CodeCheckTaskTrigger task={self.codecheck_task_id!r} conn={self.codecheck_conn_id!r}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        end = self.end_from_trigger
        try:
            if end is not None:
                self._prepare_rendered(end)
            validate_task_id(self.codecheck_task_id)
        except (InvalidTaskIdError, CodeCheckConfigurationError) as error:  # bad input ends the wait at once
            event = make_event(
                "error",
                str(self.codecheck_task_id),
                str(error),
                exec_id=self.exec_id,
                error=error if isinstance(error, CodeCheckError) else None,
            )
            if end is None:
                yield TriggerEvent(event)
            else:
                yield self._ending(end, Verdict(None, _configuration_error(error)), event, {})
            return
        hook = CodeCheckHook(self.codecheck_conn_id)
        ending: TriggerEvent | None = None
        extra: dict[str, Any] = {}
        try:
            async with hook.async_client() as client:
                if end is not None and end.get("kind") == "operator":
                    # What execute() pushes before waiting, when it runs (run=False: no exec_id).
                    extra = {
                        "exec_id": None,
                        CONSOLE_URL_XCOM_KEY: console_url(client.settings, self.codecheck_task_id),
                    }
                event = await self._wait(client)
                if end is not None:
                    ending = await self._end(client, end, event, extra)
        except CodeCheckError as error:  # e.g. an invalid connection: end the wait with a clear event
            event = make_event("error", self.codecheck_task_id, str(error), exec_id=self.exec_id, error=error)
        except AirflowNotFoundException as missing:  # the connection id does not exist
            event = make_event("error", self.codecheck_task_id, str(missing), exec_id=self.exec_id)
        except (
            ValueError
        ) as invalid:  # bad input never escapes (on 2.11 it made the triggerer retry in a loop)
            event = make_event(
                "error", self.codecheck_task_id, f"invalid input: {invalid}", exec_id=self.exec_id
            )
        if end is not None and ending is None:  # the wait ended in an error: no reads needed for its verdict
            ending = await self._end(None, end, event, extra)
        yield ending if ending is not None else TriggerEvent(event)

    # --- start_from_trigger: check the rendered input, end the task here ---------------------------------------

    def _prepare_rendered(self, end: dict[str, Any]) -> None:
        """Check and normalise what Airflow rendered into this trigger, as ``execute()`` does in a worker."""
        exec_id, job_id = given_id(self.exec_id), given_id(self.job_id)
        if end.get("kind") == "sensor":
            if exec_id and job_id and exec_id != job_id:
                raise CodeCheckConfigurationError(
                    f"exec_id {exec_id!r} and job_id {job_id!r} name different executions; set one of them"
                )
            self.exec_id = self.job_id = exec_id or job_id
        else:  # the operator with run=False: no run of its own, so no exec_id and no fallback from job_id
            self.exec_id, self.job_id, self.job_id_fallback = None, job_id, False
            self.quality_gate = validate_quality_gate(self.quality_gate)
        if self.deadline is None and end.get("wait_timeout") is not None:
            # The scheduler set the trigger's timeout (timeout_after) to wait_timeout + margin when it created
            # the trigger; it is stored with the task instance, so a triggerer restart keeps the same deadline.
            after = getattr(self, "timeout_after", None)
            if after is not None:
                after = after if after.tzinfo else after.replace(tzinfo=UTC)
                self.deadline = after.timestamp() - float(end.get("timeout_margin") or 0.0)
            else:
                self.deadline = time.time() + float(end["wait_timeout"])

    async def _end(
        self, client: AsyncClient | None, end: dict[str, Any], event: dict[str, Any], extra: dict[str, Any]
    ) -> TriggerEvent:
        """Read what the verdict needs (after a success), decide it as the worker would, end the task."""
        from airflow_provider_codecheck.core import operations as ops

        event = checked_event(event)  # the same validation execute_complete applies
        success = client is not None and event["status"] == "success"
        summary: DefectSummary | None = None
        summary_error: CodeCheckError | None = None
        if success:
            assert client is not None
            try:
                job_id = self.job_id
                summary = await (
                    client.execute(ops.get_scan_summary(self.codecheck_task_id, job_id))
                    if job_id
                    else client.get_defects_summary(self.codecheck_task_id)
                )
            except CodeCheckError as error:  # the verdict is known: keep it, without the summary
                summary_error = error
                self.log.warning(
                    "CodeArts task %s succeeded but its defects summary (the service's gate verdict) could not "
                    "be read: %s",
                    self.codecheck_task_id,
                    error,
                )
        if end.get("kind") == "sensor":
            verdict = sensor_verdict(event, summary)
        else:
            defects: dict[str, int] | None = None
            defects_error: CodeCheckError | None = None
            if success:
                assert client is not None
                try:
                    defects = (await client.get_defects_statistic(self.codecheck_task_id)).severity
                except CodeCheckError as error:  # only a quality gate needs the counts
                    defects_error = error
                    self.log.warning(
                        "CodeArts task %s succeeded but its defect counts could not be read: %s",
                        self.codecheck_task_id,
                        error,
                    )
            verdict = operator_verdict(
                event,
                defects=defects,
                defects_error=defects_error,
                summary=summary,
                summary_error=summary_error,
                fail_on_failure=bool(end.get("fail_on_failure", True)),
                gate=self.quality_gate or {},
                fail_on_service_gate=bool(end.get("fail_on_service_gate")),
            )
        for line in verdict.warnings:
            self.log.warning("%s", line)
        return self._ending(end, verdict, event, extra)

    def _ending(
        self, end: dict[str, Any], verdict: Verdict, event: dict[str, Any], extra: dict[str, Any]
    ) -> TriggerEvent:
        # The retries Airflow will apply are those of the task in the run's serialized DAG (after cluster
        # policies): the triggerer gave us that task; the kwarg (parse time) is the fallback.
        retries = getattr(getattr(getattr(self, "task_instance", None), "task", None), "retries", None)
        if isinstance(retries, int):
            end = {**end, "retries": retries}
        ending = task_end_event(verdict, end, extra)
        if ending is None:
            # A failure Airflow must not retry, on a task with retries: only a worker can raise it so. The
            # worker's execute_complete decides again from this event (docs/start-from-trigger.md).
            self.log.info(
                "%s; the task ends in a worker (%s)", event["message"], type(verdict.error).__name__
            )
            return TriggerEvent({**event, "started_from_trigger": True})
        self.log.info(
            "%s; ending the task here: %s", event["message"], type(ending).__name__.removesuffix("Event")
        )
        return ending

    async def _wait(self, client: AsyncClient) -> dict[str, Any]:
        wait = ScanWait(
            self.codecheck_task_id,
            self.poll_interval,
            self.deadline,
            self.stale_until,
            self.exec_id,
            self.max_poll_interval,
        )
        while (event := wait.expired(time.time())) is None:
            answer = await self._poll(client, wait.time_left(time.time()))
            event = wait.observe(answer, time.time())
            wait.flush(self.log)
            if event is not None:
                break
            await asyncio.sleep(wait.next_pause(time.time()))
        return event

    async def _poll(self, client: AsyncClient, timeout: float | None) -> TaskProgress | CodeCheckError:
        result = await self._poll_once(client, timeout, self.job_id if self._use_job_id else None)
        if isinstance(result, NotFoundError) and self._use_job_id and self.job_id and self.job_id_fallback:
            # The run's own exec_id is real: a service that does not know it as a job_id does not support job_id.
            self._use_job_id = False
            self.log.warning(
                "CodeArts task %s: progress does not know job_id %s (%s); following the task's latest scan",
                self.codecheck_task_id,
                self.job_id,
                result,
            )
            result = await self._poll_once(client, timeout, None)
        return result

    async def _poll_once(
        self, client: AsyncClient, timeout: float | None, job_id: str | None
    ) -> TaskProgress | CodeCheckError:
        # Bound the poll (with its retries) by the deadline, so the wait ends on time. asyncio.timeout, not
        # asyncio.wait_for: it bounds the poll in this task (no task per poll, which cost ~25% of a poll's CPU, see
        # BENCHMARKS.md), and a cancellation of this task (triggerer shutdown, trigger moved to another triggerer)
        # is never swallowed, where wait_for before Python 3.12 swallows one that arrives as the poll completes.
        try:
            async with asyncio.timeout(timeout):
                progress: TaskProgress = await client.get_task_progress(self.codecheck_task_id, job_id)
            return progress
        except TimeoutError:
            return TransportError("poll cut short by the wait deadline")
        except CodeCheckError as error:
            return error

    async def on_kill(self) -> None:
        """Stop the scan when a user kills the deferred task and ``cancel_on_kill`` is set (Airflow >= 3.3).

        Airflow 3.3.0-3.3.2 also call ``on_kill`` when the trigger merely moved to another triggerer
        (apache/airflow PR #73454). Then the task instance is still DEFERRED, under its new triggerer; after a
        user kill (mark failed/success, clear) it is not. So the scan is stopped only when the task instance is
        seen no longer deferred, and never when its state cannot be read. Stopping is idempotent: only a
        scan still checking is stopped. Airflow 2.11 never calls a trigger's ``on_kill``.
        """
        if not self.cancel_on_kill:
            return
        still_deferred = await self._task_instance_still_deferred()
        stop, reason = decide_stop_on_kill(self.cancel_on_kill, still_deferred)
        if not stop:
            self.log.warning("Not stopping CodeArts task %s: %s", self.codecheck_task_id, reason)
            return
        hook = CodeCheckHook(self.codecheck_conn_id)
        try:
            async with hook.async_client() as client:
                try:
                    progress = await client.get_task_progress(
                        self.codecheck_task_id, (self.job_id or self.exec_id) if self._use_job_id else None
                    )
                except CodeCheckError as error:  # a real kill: stop unless the scan is known to have ended
                    self.log.warning(
                        "Could not read CodeArts task %s before stopping it: %s",
                        self.codecheck_task_id,
                        error,
                    )
                    progress = None
                fresh = self.stale_until is None or time.time() >= self.stale_until
                if progress is not None and progress.status.is_terminal and fresh:
                    self.log.info(
                        "CodeArts task %s already ended (%s): nothing to stop",
                        self.codecheck_task_id,
                        progress.status.value,
                    )
                    return
                await client.stop_task(self.codecheck_task_id)
            self.log.info("Stopped CodeArts task %s: %s", self.codecheck_task_id, reason)
        except CodeCheckError as error:
            self.log.error("Could not stop CodeArts task %s: %s", self.codecheck_task_id, error)

    async def _task_instance_still_deferred(self) -> bool | None:
        """Whether this trigger's task instance is still DEFERRED; None when that cannot be read."""
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return None
        try:
            from airflow.sdk.execution_time import task_runner
            from airflow.sdk.execution_time.comms import GetTICount, TICount

            comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
            if comms is None:
                return None
            answer = await comms.asend(
                GetTICount(
                    dag_id=ti.dag_id,
                    run_ids=[ti.run_id],
                    task_ids=[ti.task_id],
                    map_index=ti.map_index,
                    states=["deferred"],
                )
            )
        except Exception as error:  # any failure to read the state means: do not stop
            self.log.warning("Could not read the state of task instance %s: %s", ti, error)
            return None
        if not isinstance(answer, TICount):
            self.log.warning("Unexpected answer reading the state of task instance %s: %r", ti, answer)
            return None
        return answer.count > 0


def task_end_event(verdict: Verdict, end: dict[str, Any], extra: dict[str, Any]) -> TriggerEvent | None:
    """The event that ends the task in the triggerer for ``verdict``, or None: let a worker end it.

    Mirrors what Airflow does with the exception a worker would raise: success pushes the keys and the return
    value; a sensor's ``soft_fail``/``never_fail`` skip an AirflowException (a failed or stopped scan, the
    timeout) but never a permanent API error or an invalid input; everything else fails. Airflow 3.3.2 retries
    a ``TaskFailedEvent`` like any failure, so a failure that must not be retried (AirflowFailException,
    AirflowSensorTimeout) ends here only on a task without retries; with retries it is left to the worker.
    """
    from airflow.providers.common.compat.sdk import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
    )
    from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent

    xcoms: dict[str, Any] = {**extra, **(verdict.result or {})}
    error = verdict.error
    if error is None:
        if end.get("push_return", True):
            xcoms["return_value"] = verdict.result
        return TaskSuccessEvent(xcoms=xcoms or None)
    configuration = isinstance(error, CodeCheckConfigurationError)
    skippable = isinstance(error, AirflowException) and not configuration
    if skippable and end.get("kind") == "sensor" and (end.get("soft_fail") or end.get("never_fail")):
        return TaskSkippedEvent(xcoms=xcoms or None)
    final = isinstance(error, (AirflowFailException, AirflowSensorTimeout))
    if final and end.get("retries"):
        soft = end.get("soft_fail") or end.get("never_fail")
        if not (configuration and soft):
            return None
        # A worker would soft-fail an invalid input it found while resuming, which it never does today (it
        # fails before waiting): fail here, at the price of retries that fail the same way at once.
    return TaskFailedEvent(xcoms=xcoms or None)


def _configuration_error(error: Exception) -> CodeCheckConfigurationError:
    if isinstance(error, CodeCheckConfigurationError):
        return error
    return CodeCheckConfigurationError(f"codecheck_task_id: {error}")


def decide_stop_on_kill(cancel_on_kill: bool, still_deferred: bool | None) -> tuple[bool, str]:
    """Whether ``on_kill`` should stop the scan, and why (the reason is logged either way)."""
    if not cancel_on_kill:
        return False, "cancel_on_kill is off"
    if still_deferred is None:
        return False, "the task instance's state could not be read, so this may be a triggerer failover"
    if still_deferred:
        return False, "the task instance is still deferred: the trigger moved to another triggerer"
    return True, "the Airflow task was killed"


# The event-driven trigger (AssetWatcher) lives in its own module; importable from here as well.
from airflow_provider_codecheck.triggers.events import CodeCheckScanEventTrigger  # noqa: E402

__all__ = ["CodeCheckScanEventTrigger", "CodeCheckTaskTrigger", "decide_stop_on_kill", "task_end_event"]
