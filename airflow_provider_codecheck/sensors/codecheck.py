"""CodeCheckTaskSensor: wait for a CodeArts Check scan started elsewhere."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, conf

from airflow_provider_codecheck.durations import max_interval
from airflow_provider_codecheck.provider_info import DEFAULT_CONN_ID

TWELVE_HOURS = 12 * 3600.0

# Every DAG file that uses the sensor imports this module when it is parsed: the hook, the clients and the
# result handling are imported when a task runs, not here.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import PokeReturnValue

    from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook


class CodeCheckTaskSensor(BaseSensorOperator):
    """Wait until a CodeArts Check task's latest scan ends.

    Succeeds when the scan succeeds (task_status 2) and returns the result dict (also pushed to XCom under
    ``codecheck_task_id``, ``exec_id``, ``task_status``, ``status``, ``ratio``, ``info``, ``defects`` (always
    None: the sensor does not read the counts), and, from the defects summary of the awaited execution
    (``defects-summary?job_id=<exec_id or job_id>``; the task's latest summary when neither is given), read
    after a successful scan only: ``is_access`` (bool, the verdict of the quality gate configured on the task
    in CodeArts: True passed, False failed), ``issue_count`` (int), ``code_quality`` (float),
    ``risk_coefficient`` (float), ``last_check_time`` (str, UTC ``yyyy-MM-ddTHH:mm:ssZ``)). These five are None
    after a failed or stopped scan, when the service gave no value, or when the summary could not be read (the
    sensor then still succeeds: the scan's verdict is kept). The sensor never fails on ``is_access``: chain on
    the XCom, or use ``CodeCheckRunTaskOperator(fail_on_service_gate=True)``.
    A failed (1) or stopped (3) scan raises ``CodeCheckScanFailed``; running past ``timeout`` (default 12 hours,
    the longest a CodeArts check lasts) raises ``AirflowSensorTimeout``; ``soft_fail=True`` skips in both cases.
    A permanent API error (403, rejected credentials, unknown task, invalid connection) raises
    ``CodeCheckWaitAborted`` and fails the task even with ``soft_fail``, in every mode; an invalid task id fails
    before any wait with ``CodeCheckConfigurationError``. A task never scanned keeps the sensor waiting.

    :param codecheck_task_id: CodeArts Check task id (templated).
    :param codecheck_conn_id: Airflow connection id (templated).
    :param exec_id: the ``exec_id`` of the run to wait for (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='run', key='exec_id') }}"`` after ``CodeCheckRunTaskOperator(...,
        wait_for_completion=False)``. Progress is then asked with ``job_id=exec_id`` (that execution's status),
        so the previous scan's verdict, which the service reports for a while after a run starts, is never
        returned. Empty or ``"None"`` (an XCom that held None, rendered) means: the task's latest scan.
        Reported back in the ``exec_id`` XCom.
    :param job_id: optional execution-record id for the progress API (templated); same as ``exec_id``.
    :param deferrable: wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``. ``poke_interval`` is the poll interval in every mode.
    :param max_poll_interval: deferred mode: the longest pause between polls while the scan is far from its
        estimated end or its ratio stalls, seconds or ``timedelta`` (default: ten ``poke_interval``, at most
        300 s; ``poke_interval`` is the shortest). See docs/polling.md.
    :param start_from_trigger: Airflow >= 3.3.2: the scheduler hands the task straight to the triggerer, which
        renders the templated fields, waits and ends the task there (no worker run at all) with the same XComs
        and the same success/failure/skip/timeout rules; ``deferrable`` is then implied. A failure Airflow must
        not retry (failed scan, timeout) on a task with ``retries`` ends in a worker instead. On older Airflow
        and for mapped tasks the task defers from a worker as usual (one log line says why). Templates render
        in a bare Jinja environment there (no DAG ``user_defined_macros``). See docs/start-from-trigger.md.
    """

    template_fields: Sequence[str] = ("codecheck_task_id", "codecheck_conn_id", "exec_id", "job_id")
    ui_color = "#c7000b"

    def __init__(
        self,
        *,
        codecheck_task_id: str,
        codecheck_conn_id: str = DEFAULT_CONN_ID,
        exec_id: str | None = None,
        job_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_poll_interval: float | timedelta | None = None,
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("timeout", TWELVE_HOURS)  # a check lasts at most 12 hours
        super().__init__(**kwargs)
        self.max_poll_interval = max_interval(max_poll_interval, float(self.poke_interval))
        self.codecheck_task_id = codecheck_task_id
        self.codecheck_conn_id = codecheck_conn_id
        self.exec_id = exec_id
        self.job_id = job_id
        self.deferrable = deferrable or start_from_trigger
        self._retry_after: float | None = None
        self._start_from_trigger_asked = start_from_trigger
        if start_from_trigger:
            self._enable_start_from_trigger()

    def _enable_start_from_trigger(self) -> None:
        from airflow_provider_codecheck import triggering

        poll = float(self.poke_interval)
        margin = triggering.timeout_margin(poll)
        triggering.enable(
            self,
            {
                # The template fields, raw: Airflow >= 3.3.2 renders them into the trigger's same-named attributes.
                "codecheck_task_id": self.codecheck_task_id,
                "codecheck_conn_id": self.codecheck_conn_id,
                "exec_id": self.exec_id,
                "job_id": self.job_id,
                "poll_interval": poll,
                "max_poll_interval": self.max_poll_interval,
                "end_from_trigger": {
                    "kind": "sensor",
                    "wait_timeout": float(self.timeout),
                    "timeout_margin": margin,
                    "soft_fail": bool(self.soft_fail),
                    "never_fail": bool(getattr(self, "never_fail", False)),
                    "retries": int(self.retries or 0),
                    "push_return": bool(self.do_xcom_push),
                },
            },
            float(self.timeout),
            margin,
        )

    def _execution(self) -> str | None:
        """The execution record to ask progress about (rendered ``exec_id`` / ``job_id``), or None."""
        from airflow_provider_codecheck.exceptions import CodeCheckConfigurationError
        from airflow_provider_codecheck.results import given_id

        exec_id, job_id = given_id(self.exec_id), given_id(self.job_id)
        if exec_id and job_id and exec_id != job_id:
            raise CodeCheckConfigurationError(
                f"exec_id {exec_id!r} and job_id {job_id!r} name different executions; set one of them"
            )
        return exec_id or job_id

    @cached_property
    def hook(self) -> CodeCheckHook:
        from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook

        return CodeCheckHook(self.codecheck_conn_id)

    def _get_next_poke_interval(self, started_at: Any, run_duration: Any, poke_count: int) -> float:
        # A throttled poke (HTTP 429 with Retry-After) is not repeated before the server asked (poke and
        # reschedule modes; the deferred wait does the same in the trigger).
        interval = float(super()._get_next_poke_interval(started_at, run_duration, poke_count))
        retry_after, self._retry_after = self._retry_after, None
        if retry_after and retry_after > interval:
            self.log.info("Throttled: next poke in %gs, as the service asked", retry_after)
            return float(retry_after)
        return interval

    def _validate(self) -> None:
        """Reject bad input before any wait (rendered fields): never defer a wait that cannot succeed."""
        from airflow_provider_codecheck.core.errors import InvalidTaskIdError
        from airflow_provider_codecheck.core.operations import validate_task_id
        from airflow_provider_codecheck.exceptions import CodeCheckConfigurationError

        try:
            validate_task_id(self.codecheck_task_id)
        except InvalidTaskIdError as error:
            raise CodeCheckConfigurationError(f"codecheck_task_id: {error}") from None
        self._execution()

    def execute(self, context: Any) -> Any:
        if self._start_from_trigger_asked:
            from airflow_provider_codecheck.triggering import fallback_reason

            self.log.info(
                "start_from_trigger: this task runs in a worker because %s; it defers from here instead",
                fallback_reason(),
            )
        self._validate()
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger

        self.defer(
            trigger=CodeCheckTaskTrigger(
                codecheck_task_id=self.codecheck_task_id,
                codecheck_conn_id=self.codecheck_conn_id,
                poll_interval=self.poke_interval,
                max_poll_interval=self.max_poll_interval,
                deadline=time.time() + self.timeout,
                exec_id=self._execution(),
                job_id=self._execution(),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Any) -> bool | PokeReturnValue:
        from airflow.providers.common.compat.sdk import PokeReturnValue

        from airflow_provider_codecheck.core.errors import CodeCheckError
        from airflow_provider_codecheck.core.waiting import describe, make_event
        from airflow_provider_codecheck.exceptions import CodeCheckWaitAborted

        try:
            progress = self.hook.get_task_progress(self.codecheck_task_id, self._execution())
        except CodeCheckError as error:
            if error.retryable:
                self.log.warning("Transient error, poking again later: %s", error)
                self._retry_after = error.retry_after
                return False
            raise CodeCheckWaitAborted(f"Polling stopped: {error}") from None
        self.log.info("CodeArts task %s: %s", self.codecheck_task_id, describe(progress))
        if not progress.status.is_terminal:
            return False
        event = make_event(
            progress.status.value,
            self.codecheck_task_id,
            f"scan ended: {describe(progress)}",
            progress,
            exec_id=self._execution(),
        )
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, event))

    def execute_complete(self, context: Any, event: Any = None) -> dict[str, Any]:
        from airflow_provider_codecheck.results import checked_event

        if isinstance(event, dict) and event.get("started_from_trigger"):
            # start_from_trigger handed the end back (see docs/start-from-trigger.md): execute() never ran, so
            # the rendered input is checked here, as execute() would have, before anything is pushed.
            self._validate()
        return self._finish(context, checked_event(event))

    def _finish(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from airflow_provider_codecheck.core.errors import CodeCheckError
        from airflow_provider_codecheck.results import push_result, sensor_verdict

        summary = None
        if event["status"] == "success":
            try:
                summary = self.hook.get_scan_summary(self.codecheck_task_id, self._execution())
            except CodeCheckError as error:  # the verdict is known: keep it, without the summary
                self.log.warning(
                    "CodeArts task %s succeeded but its defects summary (the service's gate verdict) could not "
                    "be read: %s",
                    self.codecheck_task_id,
                    error,
                )
        verdict = sensor_verdict(event, summary)
        if verdict.result is not None:
            push_result(context, verdict.result)
        if verdict.error is not None:
            raise verdict.error
        assert verdict.result is not None
        self.log.info("%s; service gate is_access %s", event["message"], verdict.result["is_access"])
        return verdict.result
