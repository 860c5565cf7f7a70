"""CodeCheckHook: an Airflow connection in, an authenticated CodeArts Check client out."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.common.compat.sdk import BaseHook

try:  # newer common-compat releases; the floor (1.17) has only get_async_connection
    from airflow.providers.common.compat.connection import get_async_extra_dejson
except ImportError:
    get_async_extra_dejson = None  # type: ignore[assignment]

from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.errors import AuthenticationError, CodeCheckError, NotFoundError
from airflow_provider_codecheck.core.models import TaskProgress
from airflow_provider_codecheck.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from airflow_provider_codecheck.core.settings import ConnectionSettings, settings_from_connection
from airflow_provider_codecheck.core.waiting import ScanWait
from airflow_provider_codecheck.provider_info import CONN_TYPE, DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow_provider_codecheck.transport.aio import AsyncClient
    from airflow_provider_codecheck.transport.sync import SyncClient

T = TypeVar("T")

# A task id that cannot exist: test_connection reads it, so proving credentials changes nothing.
_PROBE_TASK_ID = "airflow-connection-test-0000"
# The documented answer for a task id that does not exist (HTTP 200 with this code).
_UNKNOWN_TASK_CODES = frozenset({"CC.00050002"})


# How long (seconds) a trigger process reuses the settings it read for a connection id (see _SettingsCache).
CONNECTION_CACHE_TTL = 30.0


def settings_from_airflow_connection(conn: Any, extra: dict[str, Any] | None = None) -> ConnectionSettings:
    """Settings from an Airflow connection; ``conn.port`` (where Airflow keeps ``host:port``) is honoured.

    ``extra``: the connection's extras when already read (the async path reads them without blocking);
    None reads ``conn.extra_dejson``.
    """
    port = getattr(conn, "port", None)
    if extra is None:
        extra = conn.extra_dejson
    return settings_from_connection(
        conn.host, conn.login, conn.password, extra or {}, port=int(port) if port else None
    )


class _SettingsCache:
    """Process-wide ConnectionSettings per conn_id for the async path (triggers), kept ``ttl`` seconds.

    In Airflow 3.3 every ``aget_connection`` is a request the triggerer's supervisor serves one at a time
    (no secrets cache in the triggerer), so 1,000 triggers starting together would queue 1,000 lookups of the
    same connection. Here each conn_id is looked up at most once per ``ttl`` per process:

    * single flight: concurrent callers on one event loop await ONE lookup (a task per (loop, conn_id),
      shielded so a cancelled caller does not cancel it for the others); asyncio objects are never shared
      across event loops, only the finished settings are;
    * errors (missing connection, invalid fields) are not cached: the next call looks up again;
    * a connection defined by an ``AIRFLOW_CONN_<ID>`` environment variable is re-read as soon as that
      variable changes (checked locally through a digest of its value; no lookup, no secret kept);
    * ``forget(conn_id, settings)`` drops the entry when a call made with it was rejected as unauthenticated,
      so a fixed password is read at once; a lookup started before the drop is not stored.

    Entries hold settings objects (secrets included, in memory only); nothing here logs or shows them.
    """

    def __init__(
        self, ttl: float = CONNECTION_CACHE_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()  # entries are read by every triggerer thread (2.11 runs one per thread)
        self._entries: dict[str, tuple[str | None, float, ConnectionSettings]] = {}
        self._generations: dict[str, int] = {}
        self._inflight: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str | None], asyncio.Task[ConnectionSettings]]
        ] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"_SettingsCache(ttl={self.ttl!r}, conn_ids={sorted(self._entries)!r})"

    @staticmethod
    def _env_digest(conn_id: str) -> str | None:
        value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        return None if value is None else hashlib.sha256(value.encode()).hexdigest()

    def cached(self, conn_id: str) -> ConnectionSettings | None:
        return self._cached(conn_id, self._env_digest(conn_id))

    def _cached(self, conn_id: str, digest: str | None) -> ConnectionSettings | None:
        with self._lock:
            entry = self._entries.get(conn_id)
            if entry is None:
                return None
            if entry[0] != digest or self.clock() >= entry[1]:
                del self._entries[conn_id]
                return None
            return entry[2]

    async def get(self, conn_id: str, lookup: Callable[[], Any]) -> ConnectionSettings:
        """The cached settings of ``conn_id``, or the result of one shared ``await lookup()``."""
        digest = self._env_digest(conn_id)
        settings = self._cached(conn_id, digest)
        if settings is not None:
            return settings
        loop = asyncio.get_running_loop()
        key = (conn_id, digest)
        with self._lock:
            flights = self._inflight.setdefault(loop, {})
            task = flights.get(key)
            if task is None:
                generation = self._generations.get(conn_id, 0)
                task = loop.create_task(self._lookup(conn_id, digest, lookup, generation))
                flights[key] = task
                task.add_done_callback(lambda done: self._landed(flights, key, done))
        return await asyncio.shield(task)

    async def _lookup(
        self, conn_id: str, digest: str | None, lookup: Callable[[], Any], generation: int
    ) -> ConnectionSettings:
        settings: ConnectionSettings = await lookup()
        with self._lock:
            if self._generations.get(conn_id, 0) == generation:
                self._entries[conn_id] = (digest, self.clock() + self.ttl, settings)
        return settings

    def _landed(
        self,
        flights: dict[tuple[str, str | None], asyncio.Task[ConnectionSettings]],
        key: tuple[str, str | None],
        task: asyncio.Task[Any],
    ) -> None:
        with self._lock:
            if flights.get(key) is task:
                del flights[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when every waiter was cancelled

    def forget(self, conn_id: str, settings: ConnectionSettings | None = None) -> None:
        """Drop ``conn_id`` (only if it still holds ``settings``, when given: a fresher entry stays)."""
        with self._lock:
            entry = self._entries.get(conn_id)
            if settings is None or entry is None or entry[2] is settings:
                self._entries.pop(conn_id, None)
                self._generations[conn_id] = self._generations.get(conn_id, 0) + 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            for conn_id in self._generations:
                self._generations[conn_id] += 1


CONNECTION_CACHE = _SettingsCache()
"""The process's async-path cache of connection settings (tests swap ``clock`` or call ``clear()``)."""


@cache
def _forgetful_client_class() -> type[Any]:
    """AsyncClient that drops its settings from CONNECTION_CACHE when a call is rejected as unauthenticated.

    Every call goes through ``execute``; the error still propagates unchanged. Built lazily: importing
    transport.aio loads aiohttp, which DAG files importing an operator should not pay for.
    """
    from airflow_provider_codecheck.transport.aio import AsyncClient

    class _ForgetfulAsyncClient(AsyncClient):
        def __init__(self, conn_id: str, settings: ConnectionSettings, policy: RetryPolicy) -> None:
            super().__init__(settings, policy)
            self.conn_id = conn_id

        async def execute(self, op: Any) -> Any:
            try:
                return await super().execute(op)
            except AuthenticationError:
                CONNECTION_CACHE.forget(self.conn_id, self.settings)
                raise

    return _ForgetfulAsyncClient


def _new_async_client(conn_id: str, settings: ConnectionSettings, policy: RetryPolicy) -> AsyncClient:
    client: AsyncClient = _forgetful_client_class()(conn_id, settings, policy)
    return client


class CodeCheckHook(BaseHook, ops.NamedOperations):
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
        """Read the connection without blocking the event loop (for triggers).

        Cached per process for ``CONNECTION_CACHE_TTL`` seconds (30) with one shared lookup per conn_id and
        event loop; dropped at once when a call made with the settings is rejected as unauthenticated.
        """
        return await CONNECTION_CACHE.get(self.codecheck_conn_id, self._alookup_settings)

    async def _alookup_settings(self) -> ConnectionSettings:
        conn = await get_async_connection(self.codecheck_conn_id, self)
        # extras read asynchronously where common-compat can: a sync extra_dejson is another blocking
        # supervisor round trip on 3.3
        extra = await get_async_extra_dejson(conn) if get_async_extra_dejson is not None else None
        return settings_from_airflow_connection(conn, extra)

    @cached_property
    def client(self) -> SyncClient:
        """Blocking client with one keep-alive session for this hook's lifetime."""
        # Imported here: requests costs ~100 ms, paid by every DAG file that imports an operator otherwise.
        from airflow_provider_codecheck.transport.sync import SyncClient

        return SyncClient(self.get_settings(), self.retry_policy)

    @asynccontextmanager
    async def async_client(self) -> AsyncIterator[AsyncClient]:
        """Non-blocking client sharing this event loop's session pool for the connection's settings.

        A call rejected as unauthenticated (AuthenticationError) drops the cached settings of this conn_id,
        so the next client reads the connection again (a fixed password is picked up at once).
        """
        settings = await self.aget_settings()
        async with _new_async_client(self.codecheck_conn_id, settings, self.retry_policy) as client:
            try:
                yield client
            except AuthenticationError:  # raised by the body itself, not by a client call
                CONNECTION_CACHE.forget(self.codecheck_conn_id, settings)
                raise

    def execute(self, op: ops.Operation[T]) -> T:
        """Run one CodeArts Check operation (``core.operations``) with this hook's client.

        The operations are also methods by name (``NamedOperations``): ``get_task_progress``, ``run_task``,
        ``stop_task``, ``get_defects_summary``, ``get_defects_statistic``, ``get_scan_summary`` (the summary of
        one execution, or the task's latest when ``job_id`` is None) and ``list_check_records``.
        """
        return self.client.execute(op)

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
        wait = ScanWait(task_id, poll_interval, deadline, stale_until, exec_id, max_poll_interval)
        use_job_id = job_id
        while (event := wait.expired(time.time())) is None:
            answer = self.poll_task_progress(task_id, use_job_id)
            if isinstance(answer, NotFoundError) and use_job_id and job_id_fallback:
                self.log.warning(
                    "CodeArts task %s: progress does not know job_id %s (%s); following the task's latest scan",
                    task_id,
                    job_id,
                    answer,
                )
                use_job_id = None
                answer = self.poll_task_progress(task_id, None)
            event = wait.observe(answer, time.time())
            wait.flush(self.log)
            if event is not None:
                break
            time.sleep(wait.next_pause(time.time()))
        return event

    def poll_task_progress(self, task_id: str, job_id: str | None = None) -> TaskProgress | CodeCheckError:
        """One progress poll for a wait: the progress, or the error it raised (``ScanWait.observe`` takes both)."""
        try:
            return self.get_task_progress(task_id, job_id)
        except CodeCheckError as error:
            return error
