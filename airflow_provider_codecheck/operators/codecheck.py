"""CodeCheckRunTaskOperator: start a CodeArts Check scan, wait for it, report the verdict."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_codecheck.durations import max_interval, seconds
from airflow_provider_codecheck.links.codecheck import CONSOLE_URL_XCOM_KEY, CodeCheckTaskLink
from airflow_provider_codecheck.provider_info import DEFAULT_CONN_ID

# Every DAG file that uses the operator imports this module when it is parsed: the hook, the clients and
# the result handling are imported when a task runs, not here.
if TYPE_CHECKING:
    from airflow_provider_codecheck.core.models import DefectSummary
    from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook

# A CodeArts check lasts at most 12 hours: a longer default wait only hides a stuck wait.
TWELVE_HOURS = 12 * 3600.0


class CodeCheckRunTaskOperator(BaseOperator):
    """Run a CodeArts Check task's scan (optional) and wait for its verdict.

    Returns, and pushes to XCom key by key: ``codecheck_task_id``, ``exec_id``, ``task_status`` (0-3),
    ``status`` (``success``, ``failed``, ``stopped``; ``started`` when not waiting), ``ratio`` (percent),
    ``info``, ``defects`` (counts by severity after a successful scan; None if they could not be read), and,
    from the defects summary of this execution (``defects-summary?job_id=``; the task's latest summary when
    the execution is not known), read after a successful scan only: ``is_access`` (bool, the verdict of the
    quality gate configured on the task in CodeArts: True passed, False failed), ``issue_count`` (int),
    ``code_quality`` (float), ``risk_coefficient`` (float), ``last_check_time`` (str, UTC
    ``yyyy-MM-ddTHH:mm:ssZ``). These five are None after a failed or stopped scan (an unfinished analysis has
    no meaningful gate verdict), when the service gave no value, or when the summary could not be read.
    ``console_url`` and ``exec_id`` are pushed as soon as the scan starts, before any waiting; ``exec_id`` is None
    when the operator attached to a scan it did not start itself (see ``run``).

    :param codecheck_task_id: CodeArts Check task id (templated).
    :param codecheck_conn_id: Airflow connection id (templated).
    :param run: start a scan first (``POST /v2/tasks/{id}/run``); False waits for the latest scan. ``run`` is
        never sent twice: a retry that finds the task checking, a run answered "task is running" (CC.00050015)
        and a run whose effect is unknown (gateway 504, timeout, reset) attach to the running scan instead; in
        the last case, if no scan is seen checking within ``new_run_grace``, the task fails without retry.
    :param run_body: optional run parameters (templated): ``git_url``, ``git_branch``, ``username``,
        ``access_token``. Prefer a service endpoint over an access token here: rendered fields are stored.
    :param wait_for_completion: wait for the scan to end (default True).
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds (number or ``timedelta``) between progress polls near the scan's estimated end
        (the shortest pause; see docs/polling.md).
    :param max_poll_interval: the longest pause between polls while the scan is far from its estimated end or
        its ratio stalls, seconds or ``timedelta`` (default: ten ``poll_interval``, at most 300 s).
    :param wait_timeout: how long to wait for the scan before failing, seconds or ``timedelta`` (default 12
        hours, the longest a CodeArts check lasts).
    :param fail_on_failure: a failed or stopped scan fails the task (after the XCom is pushed).
    :param quality_gate: maximum defects per severity, e.g. ``{"critical": 0, "major": 10}`` (templated; a JSON
        object string, as a template renders it, is accepted). An invalid gate fails the task before any scan
        starts, without retry (``CodeCheckConfigurationError``). If the scan succeeded but its defect counts
        cannot be read, the verdict XComs are still pushed (``defects`` None) and a task with a gate fails
        without retry; without a gate it succeeds.
    :param fail_on_service_gate: fail the task (``CodeCheckServiceGateFailed``, without retry, after the XCom is
        pushed) when the quality gate configured on the task in CodeArts failed a successful scan
        (``is_access`` false). An unknown verdict (the service gave none) only logs a warning. If the summary
        cannot be read (after the client's retries), the verdict XComs are still pushed (the summary keys
        None) and only a task with ``fail_on_service_gate`` fails, without retry, naming the error.
    :param cancel_on_kill: stop the scan this task started when the task is killed, if it is still checking. When
        deferred (Airflow >= 3.3) the trigger stops it only on a real user kill, never when the trigger merely
        moved to another triggerer; Airflow 2.11 does not tell a deferred task it was killed.
    :param new_run_grace: seconds after ``run`` during which a terminal status not preceded by "checking"
        is taken to be the previous scan's (the service reports it for a while after a run starts); also how
        long to look for a "checking" scan after a run whose effect is unknown.
    :param job_id: optional execution-record id for the progress API (templated). By default the operator asks
        about its own run (``job_id`` = its ``exec_id``), falling back to the task's latest scan if the service
        does not know that id. Empty or ``"None"`` means unset.
    :param start_from_trigger: with ``run=False`` only (starting a scan is never done in the triggerer), on
        Airflow >= 3.3.2: the scheduler hands the task straight to the triggerer, which renders the templated
        fields, waits, reads the counts and the summary, pushes the same XComs (``exec_id`` None,
        ``console_url``, the verdict) and ends the task there, without any worker run; ``deferrable`` is then
        implied. A failure Airflow must not retry (failed scan, quality or service gate) on a task with
        ``retries`` ends in a worker instead, which reads the counts again. On older Airflow and for mapped tasks
        the task defers from a worker as usual (one log line says why). See docs/start-from-trigger.md.
    """

    template_fields: Sequence[str] = (
        "codecheck_task_id",
        "codecheck_conn_id",
        "run_body",
        "quality_gate",
        "job_id",
    )
    template_fields_renderers = {"run_body": "json", "quality_gate": "json"}
    operator_extra_links = (CodeCheckTaskLink(),)
    ui_color = "#c7000b"

    def __init__(
        self,
        *,
        codecheck_task_id: str,
        codecheck_conn_id: str = DEFAULT_CONN_ID,
        run: bool = True,
        run_body: dict[str, Any] | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta = 30.0,
        max_poll_interval: float | timedelta | None = None,
        wait_timeout: float | timedelta = TWELVE_HOURS,
        fail_on_failure: bool = True,
        quality_gate: dict[str, int] | None = None,
        fail_on_service_gate: bool = False,
        cancel_on_kill: bool = True,
        new_run_grace: float = 60.0,
        job_id: str | None = None,
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if start_from_trigger and (run or not wait_for_completion):
            from airflow_provider_codecheck.exceptions import CodeCheckConfigurationError

            raise CodeCheckConfigurationError(
                "start_from_trigger needs run=False and wait_for_completion=True: a scan is started in a worker "
                "(run is not idempotent), so a task that starts one cannot start in the triggerer"
            )
        self.codecheck_task_id = codecheck_task_id
        self.codecheck_conn_id = codecheck_conn_id
        self.run = run
        self.run_body = run_body
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = seconds(poll_interval, "poll_interval")
        self.max_poll_interval = max_interval(max_poll_interval, self.poll_interval)
        self.wait_timeout = seconds(wait_timeout, "wait_timeout")
        self.fail_on_failure = fail_on_failure
        self.quality_gate = quality_gate
        self.fail_on_service_gate = fail_on_service_gate
        self.cancel_on_kill = cancel_on_kill
        self.new_run_grace = new_run_grace
        self.job_id = job_id
        self._started_scan = False
        self._exec_id: str | None = None
        self._stale_until: float | None = None
        self._start_from_trigger_asked = start_from_trigger
        if start_from_trigger:
            self.deferrable = True
            self._enable_start_from_trigger()

    def _enable_start_from_trigger(self) -> None:
        from airflow_provider_codecheck import triggering

        margin = triggering.timeout_margin(self.poll_interval)
        triggering.enable(
            self,
            {
                # The template fields, raw: Airflow >= 3.3.2 renders them into the trigger's same-named attributes.
                "codecheck_task_id": self.codecheck_task_id,
                "codecheck_conn_id": self.codecheck_conn_id,
                "job_id": self.job_id,
                "quality_gate": self.quality_gate,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "end_from_trigger": {
                    "kind": "operator",
                    "wait_timeout": self.wait_timeout,
                    "timeout_margin": margin,
                    "fail_on_failure": bool(self.fail_on_failure),
                    "fail_on_service_gate": bool(self.fail_on_service_gate),
                    "retries": int(self.retries or 0),
                    "push_return": bool(self.do_xcom_push),
                },
            },
            self.wait_timeout,
            margin,
        )

    @cached_property
    def hook(self) -> CodeCheckHook:
        from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook

        return CodeCheckHook(self.codecheck_conn_id)

    def execute(self, context: Any) -> dict[str, Any] | None:
        from airflow_provider_codecheck.core.settings import console_url
        from airflow_provider_codecheck.results import given_id, push_result

        if self._start_from_trigger_asked:
            from airflow_provider_codecheck.triggering import fallback_reason

            self.log.info(
                "start_from_trigger: this task runs in a worker because %s; it defers from here instead",
                fallback_reason(),
            )
        self._validate()  # fail before starting anything
        self.job_id = given_id(self.job_id)  # a rendered None XCom ("None") means: no job_id
        ti = context["ti"]
        exec_id, stale_until = self._start(ti.try_number) if self.run else (None, None)
        self._exec_id, self._stale_until = exec_id, stale_until
        ti.xcom_push(key="exec_id", value=exec_id)
        url = console_url(self.hook.get_settings(), self.codecheck_task_id)
        ti.xcom_push(key=CONSOLE_URL_XCOM_KEY, value=url)
        if not self.wait_for_completion:
            result = {"codecheck_task_id": self.codecheck_task_id, "exec_id": exec_id, "status": "started"}
            push_result(context, result)
            return result
        if self.deferrable:
            from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger

            self.defer(
                trigger=CodeCheckTaskTrigger(
                    codecheck_task_id=self.codecheck_task_id,
                    codecheck_conn_id=self.codecheck_conn_id,
                    poll_interval=self.poll_interval,
                    max_poll_interval=self.max_poll_interval,
                    deadline=time.time() + self.wait_timeout,
                    exec_id=exec_id,
                    job_id=self.job_id or exec_id,
                    stale_until=stale_until,
                    cancel_on_kill=self.cancel_on_kill and self._started_scan,
                    job_id_fallback=self.job_id is None,
                ),
                method_name="execute_complete",
                # A backstop only: the trigger enforces wait_timeout itself and reports it clearly.
                timeout=timedelta(seconds=self.wait_timeout + 2 * self.poll_interval + 60),
            )
        event = self.hook.wait_for_scan(
            self.codecheck_task_id,
            self.poll_interval,
            self.wait_timeout,
            stale_until,
            exec_id,
            self.job_id or exec_id,
            job_id_fallback=self.job_id is None,
            max_poll_interval=self.max_poll_interval,
        )
        return self._finish(context, event)

    def _start(self, try_number: int) -> tuple[str | None, float | None]:
        """Start a scan, or attach to one already running; returns (exec_id, stale_until).

        ``run`` is never called twice for one try: a retry (try > 1) that finds the task checking attaches to
        that scan; a run answered "task is running" (CC.00050015) attaches to the running scan; a run whose
        effect is unknown (504, timeout, reset after sending) attaches once the progress API shows a scan
        checking within ``new_run_grace``, and fails without retry otherwise.
        """
        from airflow_provider_codecheck.core.errors import CodeCheckError, TaskRunningError
        from airflow_provider_codecheck.core.models import TaskStatus

        if try_number > 1:
            before = self.hook.get_task_progress(self.codecheck_task_id)
            if before.status is TaskStatus.CHECKING:
                self.log.info(
                    "CodeArts task %s is already checking (try %s): waiting for that scan, not starting another",
                    self.codecheck_task_id,
                    try_number,
                )
                return None, None
        # Until a scan is seen checking, a terminal status may be the previous scan's (the service's
        # post-run lag); polling with job_id=exec_id avoids it where the service honours job_id.
        stale_until = time.time() + self.new_run_grace
        try:
            exec_id = self.hook.run_task(self.codecheck_task_id, self.run_body).exec_id
        except TaskRunningError as error:
            self.log.info(
                "CodeArts task %s already has a scan running (%s): attaching to it instead of starting another",
                self.codecheck_task_id,
                error,
            )
            return None, stale_until
        except CodeCheckError as error:
            if not error.maybe_processed:
                raise
            self._attach_after_unknown_outcome(error)
            self._started_scan = True
            return None, None
        self._started_scan = True
        self.log.info("Started CodeArts task %s, exec_id %s", self.codecheck_task_id, exec_id)
        return exec_id, stale_until

    def _attach_after_unknown_outcome(self, run_error: Exception) -> None:
        """After a run whose effect is unknown, ask the progress API whether a scan started (never run again)."""
        from airflow.providers.common.compat.sdk import AirflowFailException

        from airflow_provider_codecheck.core.errors import CodeCheckError
        from airflow_provider_codecheck.core.models import TaskStatus
        from airflow_provider_codecheck.core.waiting import describe

        self.log.warning(
            "The run of CodeArts task %s may have started a scan (%s); not calling run again: checking progress "
            "for up to %gs",
            self.codecheck_task_id,
            run_error,
            self.new_run_grace,
        )
        deadline = time.monotonic() + self.new_run_grace
        last: str | None = None
        while True:
            try:
                progress = self.hook.get_task_progress(self.codecheck_task_id)
            except CodeCheckError as error:
                if not error.retryable:
                    raise
                last = str(error)
            else:
                if progress.status is TaskStatus.CHECKING:
                    self.log.info(
                        "CodeArts task %s is checking (%s): attaching to that scan",
                        self.codecheck_task_id,
                        describe(progress),
                    )
                    return
                last = describe(progress)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AirflowFailException(
                    f"The run of CodeArts task {self.codecheck_task_id} failed with an unknown effect "
                    f"({run_error}) and no scan was seen checking within new_run_grace={self.new_run_grace:g}s "
                    f"(last progress: {last}). No second scan was started; check the task in the console."
                )
            time.sleep(min(self.poll_interval, left))

    def execute_complete(self, context: Any, event: Any = None) -> dict[str, Any]:
        from airflow_provider_codecheck.results import checked_event, given_id

        if isinstance(event, dict) and event.get("started_from_trigger"):
            # start_from_trigger handed the end back (see docs/start-from-trigger.md): execute() never ran, so
            # the rendered input is checked here, and what execute() pushes before waiting is pushed now.
            from airflow_provider_codecheck.core.settings import console_url

            self._validate()
            self.job_id = given_id(self.job_id)
            ti = context["ti"]
            ti.xcom_push(key="exec_id", value=None)
            ti.xcom_push(
                key=CONSOLE_URL_XCOM_KEY, value=console_url(self.hook.get_settings(), self.codecheck_task_id)
            )
        return self._finish(context, checked_event(event))

    def _finish(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from airflow_provider_codecheck.core.errors import CodeCheckError
        from airflow_provider_codecheck.results import operator_verdict, push_result

        defects = None
        defects_error: CodeCheckError | None = None
        summary: DefectSummary | None = None
        summary_error: CodeCheckError | None = None
        if event["status"] == "success":
            try:
                defects = self.hook.get_defects_statistic(self.codecheck_task_id).severity
            except CodeCheckError as error:
                # The verdict is known: keep it. Only a quality gate needs the counts (operator_verdict).
                defects_error = error
                self.log.warning(
                    "CodeArts task %s succeeded but its defect counts could not be read: %s",
                    self.codecheck_task_id,
                    error,
                )
            try:
                summary = self._read_summary(event.get("exec_id"))
            except CodeCheckError as error:
                # Likewise: only fail_on_service_gate needs the summary.
                summary_error = error
                self.log.warning(
                    "CodeArts task %s succeeded but its defects summary (the service's gate verdict) could not "
                    "be read: %s",
                    self.codecheck_task_id,
                    error,
                )
        verdict = operator_verdict(
            event,
            defects=defects,
            defects_error=defects_error,
            summary=summary,
            summary_error=summary_error,
            fail_on_failure=self.fail_on_failure,
            gate=self._gate(),
            fail_on_service_gate=self.fail_on_service_gate,
        )
        if verdict.result is None:  # timeout or permanent error: no verdict to push
            assert verdict.error is not None
            raise verdict.error
        push_result(context, verdict.result)
        self.log.info(
            "%s; defects %s; service gate is_access %s",
            event["message"],
            defects,
            verdict.result["is_access"],
        )
        for line in verdict.warnings:
            self.log.warning("%s", line)
        if verdict.error is not None:
            raise verdict.error
        return verdict.result

    def _read_summary(self, exec_id: str | None) -> DefectSummary:
        """The defects summary of this execution (``job_id`` given, else our ``exec_id``); the task's latest
        when neither is known, or when the service does not know our own ``exec_id`` (as progress does)."""
        from airflow_provider_codecheck.core.errors import NotFoundError
        from airflow_provider_codecheck.results import given_id

        given = given_id(self.job_id)
        job_id = given or given_id(exec_id)
        try:
            return self.hook.get_scan_summary(self.codecheck_task_id, job_id)
        except NotFoundError as error:
            if given or not job_id:
                raise
            self.log.warning(
                "CodeArts task %s: the defects summary does not know exec_id %s (%s); reading the task's latest",
                self.codecheck_task_id,
                job_id,
                error,
            )
            return self.hook.get_scan_summary(self.codecheck_task_id, None)

    def _validate(self) -> None:
        """Reject bad rendered input (task id, quality gate) before any request: no retry can fix it."""
        from airflow_provider_codecheck.core.errors import InvalidTaskIdError
        from airflow_provider_codecheck.core.operations import validate_task_id
        from airflow_provider_codecheck.exceptions import CodeCheckConfigurationError

        try:
            validate_task_id(self.codecheck_task_id)
        except InvalidTaskIdError as error:
            raise CodeCheckConfigurationError(f"codecheck_task_id: {error}") from None
        self._gate()

    def _gate(self) -> dict[str, int]:
        from airflow_provider_codecheck.results import validate_quality_gate

        return validate_quality_gate(self.quality_gate)

    def on_kill(self) -> None:
        """Stop the scan this task started (worker mode), if it is still checking (idempotent)."""
        if not (self.cancel_on_kill and self._started_scan):
            return
        from airflow_provider_codecheck.core.errors import CodeCheckError

        try:
            try:
                progress = self.hook.get_task_progress(self.codecheck_task_id, self.job_id or self._exec_id)
            except CodeCheckError as error:  # stop unless the scan is known to have ended
                self.log.warning(
                    "Could not read CodeArts task %s before stopping it: %s", self.codecheck_task_id, error
                )
                progress = None
            fresh = self._stale_until is None or time.time() >= self._stale_until
            if progress is not None and progress.status.is_terminal and fresh:
                self.log.info("CodeArts task %s already ended: nothing to stop", self.codecheck_task_id)
                return
            self.log.info("Stopping CodeArts task %s", self.codecheck_task_id)
            self.hook.stop_task(self.codecheck_task_id)
        except CodeCheckError as error:
            self.log.error("Could not stop CodeArts task %s: %s", self.codecheck_task_id, error)
