"""CodeCheckTaskTrigger: waits for a CodeArts Check scan in the triggerer's event loop."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_codecheck.core.errors import (
    CodeCheckError,
    InvalidTaskIdError,
    NotFoundError,
    TransportError,
)
from airflow_provider_codecheck.core.models import TaskProgress
from airflow_provider_codecheck.core.operations import validate_task_id
from airflow_provider_codecheck.core.waiting import ScanWait, make_event
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
from airflow_provider_codecheck.provider_info import DEFAULT_CONN_ID

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
    ) -> None:
        super().__init__()
        self.max_poll_interval = max_poll_interval
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
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
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
            },
        )

    def __repr__(self) -> str:
        return f"<CodeCheckTaskTrigger task={self.codecheck_task_id!r} conn={self.codecheck_conn_id!r}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            validate_task_id(self.codecheck_task_id)
        except InvalidTaskIdError as error:  # bad input ends the wait at once, as an error event
            yield TriggerEvent(
                make_event(
                    "error", str(self.codecheck_task_id), str(error), exec_id=self.exec_id, error=error
                )
            )
            return
        hook = CodeCheckHook(self.codecheck_conn_id)
        try:
            async with hook.async_client() as client:
                event = await self._wait(client)
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
        yield TriggerEvent(event)

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
        # Bound the poll (with its retries) by the deadline, so the wait ends on time. Not asyncio.wait_for: before
        # Python 3.12 it swallows a cancellation that arrives just as the poll completes, and the cancelled
        # trigger (triggerer shutdown, trigger moved to another triggerer) would go on polling until the scan ends.
        if sys.version_info >= (3, 11):
            # asyncio.timeout bounds the poll in this task: no task per poll (that cost ~25% of a poll's CPU, see
            # BENCHMARKS.md), and a cancellation of this task is never swallowed.
            try:
                async with asyncio.timeout(timeout):
                    progress: TaskProgress = await client.get_task_progress(self.codecheck_task_id, job_id)
                return progress
            except TimeoutError:
                return TransportError("poll cut short by the wait deadline")
            except CodeCheckError as error:
                return error
        poll = asyncio.ensure_future(client.get_task_progress(self.codecheck_task_id, job_id))
        try:
            done, _ = await asyncio.wait({poll}, timeout=timeout)
            if not done:
                poll.cancel()
                await asyncio.wait({poll})  # let it clean up; raises only if this task is cancelled
                return TransportError("poll cut short by the wait deadline")
        finally:
            poll.cancel()  # no-op once done; stops the poll when this task is cancelled
        try:
            result: TaskProgress = poll.result()
            return result
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

__all__ = ["CodeCheckScanEventTrigger", "CodeCheckTaskTrigger", "decide_stop_on_kill"]
