"""aiohttp transport for triggers: one ClientSession per event loop and connection settings, shared.

Thousands of triggers waiting in one triggerer share a bounded keep-alive pool, so polls reuse TCP and TLS
connections instead of paying a handshake each time. The session closes when its last user releases it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import aiohttp.helpers
from yarl import URL

from airflow_provider_codecheck.core import flow as core_flow
from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.core.driving import run_flow_async
from airflow_provider_codecheck.core.http import (
    READ_CHUNK,
    USER_AGENT,
    BodyBuffer,
    HttpRequest,
    HttpResponse,
    TransportFailure,
)
from airflow_provider_codecheck.core.operations import Operation
from airflow_provider_codecheck.core.settings import ConnectionSettings
from airflow_provider_codecheck.transport.base import ClientBase

T = TypeVar("T")

# The transport names itself in the User-Agent, so the service side can tell worker from triggerer calls.
DEFAULT_CONTEXT = core_flow.Context(user_agent=f"{USER_AGENT} aiohttp")

POOL_SIZE = 100
"""Connections per shared session; also the ceiling on TLS handshakes while waits keep polling."""
KEEPALIVE_S = 120.0


@dataclass
class _Shared:
    session: aiohttp.ClientSession
    users: int = 0
    # HTTP(S)_PROXY / NO_PROXY resolved once per origin ("https://host:port") for this session's lifetime.
    env_proxies: dict[str, tuple[Any, aiohttp.BasicAuth | None]] = field(default_factory=dict)

    async def env_proxy(self, url: str) -> tuple[Any, aiohttp.BasicAuth | None]:
        origin = "/".join(url.split("/", 3)[:3])
        found = self.env_proxies.get(origin)
        if found is None:
            # The lookup may read ~/.netrc: keep that file I/O off the event loop (once per origin).
            found = self.env_proxies[origin] = await asyncio.to_thread(_env_proxy_for, origin)
        return found


def _env_proxy_for(origin: str) -> tuple[Any, aiohttp.BasicAuth | None]:
    try:
        return aiohttp.helpers.get_env_proxy_for_url(URL(origin))
    except LookupError:  # no proxy for this scheme, or NO_PROXY matches the host
        return (None, None)


@dataclass
class _LoopState:
    sessions: dict[tuple[Any, ...], _Shared] = field(default_factory=dict)
    token_locks: dict[iam.CacheKey, asyncio.Lock] = field(default_factory=dict)
    credential_gates: dict[iam.CredentialKey, asyncio.Lock] = field(default_factory=dict)


# Keyed by loop so that a test or a restarted triggerer loop never sees another loop's objects.
_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()


def _loop_state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _LOOPS.get(loop)
    if state is None:
        state = _LOOPS[loop] = _LoopState()
    return state


def _ssl_for(verify: bool | str) -> ssl.SSLContext | bool:
    if verify is False:
        return False
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return True


def _new_session(settings: ConnectionSettings) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=POOL_SIZE, keepalive_timeout=KEEPALIVE_S, ssl=_ssl_for(settings.verify)
    )
    # total: connect + headers + body of one request, whatever the pace of the bytes (asserted by the tests).
    timeout = aiohttp.ClientTimeout(total=settings.timeout, sock_connect=min(settings.timeout, 10.0))
    # HTTP(S)_PROXY / NO_PROXY apply as they do for the requests transport, but via _Shared.env_proxy, not
    # trust_env=True: that makes aiohttp look up netrc and the proxy env in worker threads on EVERY request
    # (two thread hops, ~0.8 ms CPU per poll, more than the rest of the poll).
    session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True)
    # aiohttp >= 3.10 silently resends an idempotent request once after a disconnect; the core's RetryPolicy
    # is the only retry layer (attempt counts, backoff), as in the requests transport. No public switch exists.
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


class AsyncClient(ClientBase):
    """Non-blocking CodeArts Check client; use as ``async with AsyncClient(settings) as client``."""

    default_context = DEFAULT_CONTEXT
    _shared: _Shared | None = None  # set while inside "async with"

    async def __aenter__(self) -> AsyncClient:
        state = _loop_state()
        key = self.settings.transport_key()
        shared = state.sessions.get(key)
        if shared is None or shared.session.closed:
            shared = state.sessions[key] = _Shared(_new_session(self.settings))
        shared.users += 1
        self._shared = shared
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        shared, self._shared = self._shared, None
        if shared is None:
            return
        shared.users -= 1
        if shared.users == 0:
            state = _loop_state()
            key = self.settings.transport_key()
            if state.sessions.get(key) is shared:
                del state.sessions[key]
            await shared.session.close()

    async def execute(self, op: Operation[T]) -> T:
        return await run_flow_async(core_flow.perform(op, self.settings, self.policy, self.ctx), self._answer)

    async def token(self, stale: str | None = None, fetch: bool = True) -> str | None:
        """A valid IAM token for password auth: cached, single-flight across tasks of this loop.

        ``stale``: a token the service rejected, dropped from the cache first; ``fetch=False``: only that.
        """
        auth, key = self._token_key()
        lock = _loop_state().token_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if stale is not None:
                self.token_cache.invalidate(key, stale)
            if not fetch:
                return None
            cached = self.token_cache.fresh(key, time.time())
            if cached is not None:
                return cached.token
            fetched = await run_flow_async(self._fetch_token_flow(auth), self._answer)
            self.token_cache.store(key, fetched)
            return fetched.token

    async def _answer(self, effect: core_flow.Effect) -> object:
        if isinstance(effect, core_flow.Send):
            key = self._gate_key(effect)
            if key is None:
                outcome: object = await self._send(effect.request)
                self._learn(effect, outcome)
                return outcome
            async with _loop_state().credential_gates.setdefault(key, asyncio.Lock()):
                outcome = self._withheld(effect) or await self._send(effect.request)
                self._learn(effect, outcome)
                return outcome
        if isinstance(effect, core_flow.Sleep):
            await asyncio.sleep(effect.seconds)
            return None
        return await self.token(effect.stale, effect.fetch)

    async def _send(self, request: HttpRequest) -> HttpResponse | TransportFailure:
        if self._shared is None:
            raise RuntimeError("AsyncClient must be used inside 'async with'")
        if self.settings.proxy:
            proxy, proxy_auth = self.settings.proxy, None
        else:
            proxy, proxy_auth = await self._shared.env_proxy(request.url)
        try:
            async with self._shared.session.request(
                request.method,
                # encoded=True: send exactly the URL that was signed; yarl would otherwise re-quote it
                # (e.g. decode %3A to ":"), and the gateway would check the signature against another path.
                URL(request.url, encoded=True),
                headers=request.headers,
                data=request.body or None,
                proxy=proxy,
                proxy_auth=proxy_auth,
                allow_redirects=False,
            ) as response:
                headers = {name.lower(): value for name, value in response.headers.items()}
                body = BodyBuffer(response.status, headers)
                refused = body.announced_too_large()
                if refused is None:
                    async for chunk in response.content.iter_chunked(READ_CHUNK):
                        refused = body.add(chunk)
                        if refused is not None:
                            break
                if refused is not None:
                    response.close()  # drop the connection: the rest of the body is never read
                    return refused
                return body.response()
        except aiohttp.ClientConnectorCertificateError as exc:
            return TransportFailure("tls", type(exc.certificate_error).__name__, maybe_processed=False)
        except aiohttp.ClientSSLError as exc:
            return TransportFailure("tls", type(exc).__name__, maybe_processed=False)
        except aiohttp.ConnectionTimeoutError:
            return TransportFailure("connect", "connect timeout", maybe_processed=False)
        except aiohttp.ClientConnectorError as exc:
            return TransportFailure("connect", type(exc.os_error).__name__, maybe_processed=False)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return TransportFailure(
                "timeout", f"no reply within {self.settings.timeout:g}s", maybe_processed=True
            )
        except aiohttp.ClientError as exc:  # disconnects, resets, malformed HTTP, truncated payloads
            return TransportFailure("reset", type(exc).__name__, maybe_processed=True)
