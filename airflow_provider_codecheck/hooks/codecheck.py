"""CodeCheckHook: an Airflow connection in, an authenticated CodeArts Check client out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.driving import run_flow
from airflow_provider_codecheck.core.errors import AuthenticationError, CodeCheckError, NotFoundError
from airflow_provider_codecheck.core.models import DefectStatistic, DefectSummary, RunResult, TaskProgress
from airflow_provider_codecheck.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from airflow_provider_codecheck.core.settings import ConnectionSettings, settings_from_connection
from airflow_provider_codecheck.core.waiting import Pause, Poll, WaitEffect, wait_for_scan
from airflow_provider_codecheck.provider_info import CONN_TYPE, DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow_provider_codecheck.transport.aio import AsyncClient
    from airflow_provider_codecheck.transport.sync import SyncClient

# A task id that cannot exist: test_connection reads it, so proving credentials changes nothing.
_PROBE_TASK_ID = "airflow-connection-test-0000"
# The documented answer for a task id that does not exist (HTTP 200 with this code).
_UNKNOWN_TASK_CODES = frozenset({"CC.00050002"})


def settings_from_airflow_connection(conn: Any) -> ConnectionSettings:
    """Settings from an Airflow connection; ``conn.port`` (where Airflow keeps ``host:port``) is honoured."""
    port = getattr(conn, "port", None)
    return settings_from_connection(
        conn.host, conn.login, conn.password, conn.extra_dejson or {}, port=int(port) if port else None
    )


class CodeCheckHook(BaseHook):
    """Authenticated calls to Huawei Cloud CodeArts Check.

    :param codecheck_conn_id: Airflow connection of type ``huaweicloud_codecheck``. The host is the endpoint
        URL (or leave it empty and set the ``region`` extra); ``auth_type`` in the extras picks the
        credentials: ``token`` (X-Auth-Token in password), ``password`` (IAM user in login, password in
        password, ``domain_name`` extra) or ``aksk`` (AK in login, SK in password).
    :param retry_policy: attempts, backoff and time caps for transient errors (see ``RetryPolicy``).
    """

    conn_name_attr = "codecheck_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Huawei Cloud CodeArts Check"

    def __init__(
        self, codecheck_conn_id: str = DEFAULT_CONN_ID, retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    ) -> None:
        super().__init__()
        self.codecheck_conn_id = codecheck_conn_id
        self.retry_policy = retry_policy

    def __repr__(self) -> str:
        return f"CodeCheckHook(codecheck_conn_id={self.codecheck_conn_id!r})"

    # Airflow < 3.2 builds the connection form from these; newer versions read provider info.
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from airflow_provider_codecheck.connection_form import legacy_form_widgets

        return legacy_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        from airflow_provider_codecheck.connection_form import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        }

    def get_settings(self) -> ConnectionSettings:
        return settings_from_airflow_connection(self.get_connection(self.codecheck_conn_id))

    async def aget_settings(self) -> ConnectionSettings:
        """Read the connection without blocking the event loop (for triggers)."""
        from airflow.providers.common.compat.connection import get_async_connection

        conn = await get_async_connection(self.codecheck_conn_id, self)
        return settings_from_airflow_connection(conn)

    @cached_property
    def client(self) -> SyncClient:
        """Blocking client with one keep-alive session for this hook's lifetime."""
        # Imported here: requests costs ~100 ms, paid by every DAG file that imports an operator otherwise.
        from airflow_provider_codecheck.transport.sync import SyncClient

        return SyncClient(self.get_settings(), self.retry_policy)

    @asynccontextmanager
    async def async_client(self) -> AsyncIterator[AsyncClient]:
        """Non-blocking client sharing this event loop's session pool for the connection's settings."""
        from airflow_provider_codecheck.transport.aio import AsyncClient

        async with AsyncClient(await self.aget_settings(), self.retry_policy) as client:
            yield client

    def get_task_progress(self, task_id: str, job_id: str | None = None) -> TaskProgress:
        return self.client.get_task_progress(task_id, job_id)

    def run_task(self, task_id: str, body: dict[str, Any] | None = None) -> RunResult:
        return self.client.run_task(task_id, body)

    def stop_task(self, task_id: str) -> None:
        self.client.stop_task(task_id)

    def get_defects_summary(self, task_id: str) -> DefectSummary:
        return self.client.get_defects_summary(task_id)

    def get_defects_statistic(self, task_id: str) -> DefectStatistic:
        return self.client.get_defects_statistic(task_id)

    def get_scan_summary(self, task_id: str, job_id: str | None = None) -> DefectSummary:
        """The defects summary of one execution (``?job_id=``), or the task's latest when ``job_id`` is None.

        Its ``raw`` holds ``is_access``, the verdict of the quality gate configured on the task in CodeArts.
        """
        if job_id:
            return self.client.execute(ops.get_scan_summary(task_id, job_id))
        return self.client.get_defects_summary(task_id)

    def test_connection(self) -> tuple[bool, str]:
        """Prove the credentials with a read of a task that does not exist: no scan is started or changed.

        The service answers an unknown task id with HTTP 200 and error_code CC.00050002 ("query task detail
        error", per Huawei's error-code table) once the request is authenticated (a 404 is accepted as well);
        rejected credentials are a 401 before any task lookup, a missing permission a 403.
        """
        try:
            from airflow_provider_codecheck.transport.sync import SyncClient

            settings = self.get_settings()
            client = SyncClient(settings, self.retry_policy)
            try:
                client.execute(ops.get_task_progress(_PROBE_TASK_ID))
            except CodeCheckError as error:
                if not (isinstance(error, NotFoundError) or error.error_code in _UNKNOWN_TASK_CODES):
                    raise
                # authenticated: the service looked the task up
            finally:
                client.close()
        except AuthenticationError as error:
            return False, f"Credentials rejected: {error}"
        except CodeCheckError as error:
            return False, str(error)
        return True, f"Authenticated to CodeArts Check at {settings.endpoint}"

    def wait_for_scan(
        self,
        task_id: str,
        poll_interval: float,
        timeout: float | None,
        stale_until: float | None = None,
        exec_id: str | None = None,
        job_id: str | None = None,
        job_id_fallback: bool = False,
        max_poll_interval: float | None = None,
    ) -> dict[str, Any]:
        """Block until the scan ends (worker-side twin of CodeCheckTaskTrigger); returns the same event.

        ``job_id_fallback``: if progress does not know ``job_id`` (CC.00050002), follow the latest scan instead.
        """
        deadline = None if timeout is None else time.time() + timeout
        use_job_id = [job_id]

        def poll() -> TaskProgress | CodeCheckError:
            try:
                return self.get_task_progress(task_id, use_job_id[0])
            except CodeCheckError as error:
                return error

        def answer(effect: WaitEffect) -> TaskProgress | CodeCheckError | None:
            if isinstance(effect, Poll):
                result = poll()
                if isinstance(result, NotFoundError) and use_job_id[0] and job_id_fallback:
                    self.log.warning(
                        "CodeArts task %s: progress does not know job_id %s (%s); following the latest scan",
                        task_id,
                        job_id,
                        result,
                    )
                    use_job_id[0] = None
                    result = poll()
                return result
            if isinstance(effect, Pause):
                time.sleep(effect.seconds)
            else:
                getattr(self.log, effect.level)(effect.message)
            return None

        flow = wait_for_scan(
            task_id, poll_interval, deadline, stale_until, exec_id, max_poll_interval=max_poll_interval
        )
        return run_flow(flow, answer)
