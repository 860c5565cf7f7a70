"""Running the emulator: ``AsyncEmulator`` on the caller's loop (CLI), ``EmulatorServer`` in its own thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from airflow_provider_codecheck.emulator.app import build_app
from airflow_provider_codecheck.emulator.auth import WallClock, utc_now
from airflow_provider_codecheck.emulator.defaults import EmulatorConfig
from airflow_provider_codecheck.emulator.service import EmulatorService
from airflow_provider_codecheck.emulator.stats import Stats

if TYPE_CHECKING:
    from airflow_provider_codecheck.emulator.tls import TlsFiles

T = TypeVar("T")


class _HandshakeWatcher(asyncio.Protocol):
    """Wraps aiohttp's protocol on TLS listeners to count completed handshakes.

    asyncio calls the application protocol's ``connection_made`` only once the TLS handshake succeeded; aiohttp's
    handler uses ``__slots__``, so wrapping is the way to observe that moment.
    """

    def __init__(self, inner: asyncio.Protocol, stats: Stats) -> None:
        self._inner = inner
        self._stats = stats

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._stats.tls_handshakes += 1
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class AsyncEmulator:
    """The listening emulator on the current event loop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_enabled: bool = False,
        config: EmulatorConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: WallClock = utc_now,
        tls_dir: str | Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls_enabled = tls_enabled
        self.tls_dir = tls_dir
        self.tls_files: TlsFiles | None = None
        self.service = EmulatorService(config, clock, wall_clock)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._web_server: web.Server | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls_enabled else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        # A short shutdown timeout: "slow" faults keep handlers asleep for 30 s and must not delay stop().
        self._runner = web.AppRunner(
            build_app(self.service), access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        self._web_server = self._runner.server
        ssl_context = None
        if self.tls_enabled:
            # Imported here: cryptography is slow to import and plain-HTTP users do not need it.
            from airflow_provider_codecheck.emulator import tls

            self.tls_files = tls.generate(self.tls_dir)
            ssl_context = self.tls_files.server_context()
        # loop.create_server rather than a TCPSite so the protocol factory can count accepted connections.
        self._listener = await asyncio.get_running_loop().create_server(
            self._protocol_factory, self.host, self.port, ssl=ssl_context, backlog=4096, reuse_address=True
        )
        self.port = self._listener.sockets[0].getsockname()[1]

    def _protocol_factory(self) -> asyncio.Protocol:
        assert self._web_server is not None
        stats = self.service.stats
        stats.connections += 1  # asyncio calls the factory once per accepted TCP connection
        protocol = self._web_server()
        return _HandshakeWatcher(protocol, stats) if self.tls_enabled else protocol

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._listener = self._runner = None


class EmulatorServer:
    """The emulator on a background thread with its own event loop.

    ``with EmulatorServer() as emu: requests.get(emu.base_url + ...)``. The admin helpers act on the state
    directly through the loop thread (not over HTTP), so they do not disturb connection counts in stats.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: bool = False,
        config: EmulatorConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: WallClock = utc_now,
        **config_overrides: Any,
    ) -> None:
        if config_overrides:
            config = EmulatorConfig(**{**vars(config or EmulatorConfig()), **config_overrides})
        self._emulator = AsyncEmulator(
            host, port, tls_enabled=tls, config=config, clock=clock, wall_clock=wall_clock
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> EmulatorServer:
        """Return once the server is listening; raises what startup raised."""
        if self._thread is not None:
            return self
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name="codecheck-emulator", daemon=True
        )
        self._thread.start()
        try:
            started.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            raise
        return self

    def _serve(self, started: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._emulator.start())
        except BaseException as err:
            started.set_exception(err)
            loop.close()
            return
        self._loop = loop
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._emulator.close())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = self._loop = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- addresses ----------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._emulator.base_url

    @property
    def port(self) -> int:
        return self._emulator.port

    @property
    def ca_file(self) -> str | None:
        files = self._emulator.tls_files
        return str(files.ca_file) if files else None

    @property
    def config(self) -> EmulatorConfig:
        return self._emulator.service.config

    # --- admin helpers (run on the loop thread) -------------------------------------------------------

    def call(self, fn: Callable[[EmulatorService], T]) -> T:
        """Run ``fn(service)`` on the emulator's loop thread and return its result."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")
        service = self._emulator.service

        async def run() -> T:
            return fn(service)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def add_task(self, **spec: Any) -> dict[str, Any]:
        return self.call(lambda service: service.put_task(spec))

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        def read(service: EmulatorService) -> dict[str, Any] | None:
            task = service.tasks.get(task_id)
            return service.task_json(task) if task else None

        return self.call(read)

    def commit(self, task_id: str, **spec: Any) -> str:
        """ "A commit started a scan" (no run call); returns its exec id. ``spec``: duration_s, final_status,
        defects."""
        answer: dict[str, Any] = self.call(lambda service: service.commit(task_id, spec))
        return str(answer["exec_id"])

    def set_faults(self, faults: list[dict[str, Any]], seed: int | None = None) -> None:
        self.call(lambda service: service.set_faults(faults, seed))

    def reset(self) -> None:
        self.call(lambda service: service.reset())

    def stats(self) -> dict[str, Any]:
        return self.call(lambda service: service.stats_snapshot())

    def issue_token(self, lifetime_s: float | None = None) -> str:
        return self.call(lambda service: service.issue_token(lifetime_s))

    def expire_tokens(self) -> None:
        self.call(lambda service: service.tokens.expire_all())

    def revoke_tokens(self, tokens: list[str] | None = None, code: str = "APIGW.0301") -> list[str]:
        """Reject these tokens (None: every token issued so far) with 401 ``code`` from now on."""
        return self.call(lambda service: service.revoke_tokens(tokens, code))

    def set_quota(
        self,
        rate: float | None = None,
        burst: int | None = None,
        scope: str = "api",
        retry_after_form: str | None = "seconds",
    ) -> dict[str, Any]:
        """Token-bucket quota in requests per second (None: off); ``scope`` "api" = one bucket per route."""
        return self.call(lambda service: service.quota.configure(rate, burst, scope, retry_after_form))

    def set_shape(self, null_fields: str = "null") -> None:
        """ "null": fields without a value are sent as null; "absent": they are left out of 2xx answers."""
        self.call(lambda service: service.set_null_fields(null_fields))
