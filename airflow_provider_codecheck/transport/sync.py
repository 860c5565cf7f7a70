"""requests transport for workers: one keep-alive Session per client; every request bounded in total time."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, TypeVar

import requests
import requests.adapters
import requests.utils
import urllib3.connection
import urllib3.connectionpool

from airflow_provider_codecheck.core import flow as core_flow
from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.core.driving import run_flow
from airflow_provider_codecheck.core.http import (
    READ_CHUNK,
    USER_AGENT,
    BodyBuffer,
    HttpRequest,
    HttpResponse,
    TransportFailure,
)
from airflow_provider_codecheck.core.operations import Operation
from airflow_provider_codecheck.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from airflow_provider_codecheck.core.settings import ConnectionSettings
from airflow_provider_codecheck.transport.base import ClientBase

T = TypeVar("T")

# The transport names itself in the User-Agent, so the service side can tell worker from triggerer calls.
DEFAULT_CONTEXT = core_flow.Context(user_agent=f"{USER_AGENT} requests")

# One lock per token-cache key: concurrent threads wanting the same token make a single IAM call.
_TOKEN_LOCKS: dict[iam.CacheKey, threading.Lock] = {}
_TOKEN_LOCKS_GUARD = threading.Lock()


def _token_lock(key: iam.CacheKey) -> threading.Lock:
    with _TOKEN_LOCKS_GUARD:
        return _TOKEN_LOCKS.setdefault(key, threading.Lock())


# One gate per credential key not yet accepted: its requests go one at a time (see ClientBase._needs_gate).
_CREDENTIAL_GATES: dict[iam.CredentialKey, threading.Lock] = {}


def _credential_gate(key: iam.CredentialKey) -> threading.Lock:
    with _TOKEN_LOCKS_GUARD:
        return _CREDENTIAL_GATES.setdefault(key, threading.Lock())


class SyncClient(ClientBase):
    """Blocking CodeArts Check client. Not for use inside an event loop (see ``transport.aio``)."""

    default_context = DEFAULT_CONTEXT

    def __init__(
        self,
        settings: ConnectionSettings,
        policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        ctx: core_flow.Context | None = None,
        token_cache: iam.TokenCache = iam.TOKEN_CACHE,
    ) -> None:
        super().__init__(settings, policy, ctx, token_cache)
        self._session = requests.Session()
        adapter = _WatchedAdapter()
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.verify = settings.verify
        # Not trust_env: it makes requests send ~/.netrc credentials as "Authorization: Basic" (replacing the
        # AK/SK signature or sitting next to the X-Auth-Token), lets HTTP(S)_PROXY beat the connection's proxy,
        # and lets REQUESTS_CA_BUNDLE override verify. Environment proxies are resolved below instead.
        self._session.trust_env = False
        self._proxies: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self._session.close()

    def _proxies_for(self, url: str) -> dict[str, str]:
        """The connection's proxy; without one, HTTP(S)_PROXY / ALL_PROXY / NO_PROXY, once per origin."""
        if self.settings.proxy:
            return {"http": self.settings.proxy, "https": self.settings.proxy}
        origin = "/".join(url.split("/", 3)[:3])
        found = self._proxies.get(origin)
        if found is None:
            # Reads the environment only (never ~/.netrc); {} when NO_PROXY matches the host.
            found = self._proxies[origin] = requests.utils.get_environ_proxies(origin)
        return found

    def execute(self, op: Operation[T]) -> T:
        return run_flow(core_flow.perform(op, self.settings, self.policy, self.ctx), self._answer)

    def token(self, stale: str | None = None, fetch: bool = True) -> str | None:
        """A valid IAM token for password auth: cached, single-flight across threads.

        ``stale``: a token the service rejected, dropped from the cache first; ``fetch=False``: only that.
        """
        auth, key = self._token_key()
        with _token_lock(key):
            if stale is not None:
                self.token_cache.invalidate(key, stale)
            if not fetch:
                return None
            cached = self.token_cache.fresh(key, time.time())
            if cached is not None:
                return cached.token
            fetched = run_flow(self._fetch_token_flow(auth), self._answer)
            self.token_cache.store(key, fetched)
            return fetched.token

    def _answer(self, effect: core_flow.Effect) -> object:
        if isinstance(effect, core_flow.Send):
            key = self._gate_key(effect)
            if key is None:
                outcome: object = self._send(effect.request)
                self._learn(effect, outcome)
                return outcome
            with _credential_gate(key):
                outcome = self._withheld(effect) or self._send(effect.request)
                self._learn(effect, outcome)
                return outcome
        if isinstance(effect, core_flow.Sleep):
            time.sleep(effect.seconds)
            return None
        return self.token(effect.stale, effect.fetch)

    def _send(self, request: HttpRequest) -> HttpResponse | TransportFailure:
        timeout = self.settings.timeout
        watch = _Watch(timeout)
        _CURRENT.watch = watch
        watch.start()
        try:
            return self._exchange(request, timeout, watch)
        finally:
            watch.stop()
            _CURRENT.watch = None

    def _exchange(
        self, request: HttpRequest, timeout: float, watch: _Watch
    ) -> HttpResponse | TransportFailure:
        try:
            response = self._session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body or None,
                # Per socket operation; the total (connect + headers + body) is bounded by the watch.
                timeout=(min(timeout, 10.0), timeout),
                allow_redirects=False,
                # Explicitly, even without trust_env: REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE must never override the
                # connection's ca_bundle or verify=false.
                verify=self.settings.verify,
                proxies=self._proxies_for(request.url),
                stream=True,  # the body is read below, chunk by chunk, under the size cap
            )
            try:
                headers = {name.lower(): value for name, value in response.headers.items()}
                body = BodyBuffer(response.status_code, headers)
                refused = body.announced_too_large()
                if refused is not None:
                    return refused
                for chunk in response.iter_content(READ_CHUNK):
                    refused = body.add(chunk)
                    if refused is not None:
                        return refused
                return body.response()
            finally:
                response.close()  # a body left unread (refused, or an error) closes the connection
        except requests.exceptions.SSLError as exc:
            if watch.fired:
                return _overdue(timeout)
            return TransportFailure("tls", type(exc).__name__, maybe_processed=False)
        except requests.exceptions.ConnectTimeout:
            return TransportFailure("connect", "connect timeout", maybe_processed=False)
        except requests.exceptions.ReadTimeout:
            return TransportFailure("timeout", f"no reply within {timeout:g}s", maybe_processed=True)
        except requests.exceptions.ConnectionError as exc:
            unreachable = "NewConnectionError" in repr(exc) or "NameResolutionError" in repr(exc)
            if watch.fired and not unreachable:
                return _overdue(timeout)
            kind = "connect" if unreachable else "reset"
            return TransportFailure(kind, _describe(exc), maybe_processed=not unreachable)
        except requests.exceptions.RequestException as exc:  # chunked/decoding errors mid-body
            if watch.fired:
                return _overdue(timeout)
            return TransportFailure("reset", _describe(exc), maybe_processed=True)


def _overdue(timeout: float) -> TransportFailure:
    return TransportFailure(
        "timeout", f"no complete reply within {timeout:g}s (connect, headers and body)", maybe_processed=True
    )


# --- the total deadline of a request -------------------------------------------------------------------------
#
# requests/urllib3 apply ``timeout`` to each socket operation: a server that sends one byte per second, in the
# headers or the body, never trips it. The total is bounded by a watchdog instead: a timer armed for each
# request that, at the deadline, shuts the request's socket down (shutdown(), not close(): the fd stays owned
# by urllib3, and a blocked recv() in the requesting thread returns at once with EOF). The connection classes
# below tell the current request's watch which connection it uses (on each request and on each connect), so
# a pooled keep-alive connection is covered as well as a new one. A connection the watch shut down fails and
# is discarded by urllib3 (it is never reused half-read).


class _Watch:
    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._conn: Any = None
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def attach(self, conn: Any) -> None:
        with self._lock:
            self._conn = conn
            if self.fired and not self._done:
                _shutdown(conn)  # connected after the deadline: stop before sending

    def stop(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            if self._conn is not None:
                _shutdown(self._conn)


def _shutdown(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    # The plain socket's shutdown, also for an SSLSocket: its own shutdown() would drop the SSL object under
    # the thread reading from it. OSError: already closed.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_CURRENT = threading.local()
"""The watch of the request this thread is sending (requests runs the whole exchange on the caller's thread)."""


class _WatchedConnectionMixin:
    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._tell_watch()

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._tell_watch()
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def _tell_watch(self) -> None:
        watch = getattr(_CURRENT, "watch", None)
        if watch is not None:
            watch.attach(self)


class _HTTPConnection(_WatchedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with connection classes that report to the request's watch."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has its own connection classes
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


def _describe(exc: BaseException) -> str:
    """Name the chain of causes (e.g. ``ConnectionError <- ConnectionResetError``), not the URL or headers."""
    names: list[str] = []
    reason: BaseException | None = exc
    while reason is not None and len(names) < 4:
        names.append(type(reason).__name__)
        reason = reason.__cause__ or reason.__context__
    return " <- ".join(names)
