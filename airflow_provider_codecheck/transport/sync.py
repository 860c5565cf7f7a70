"""requests transport for workers: one keep-alive Session per client, timeouts always set."""

from __future__ import annotations

import threading
import time
from typing import TypeVar

import requests

from airflow_provider_codecheck.core import flow as core_flow
from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.driving import run_flow
from airflow_provider_codecheck.core.http import USER_AGENT, HttpRequest, HttpResponse, TransportFailure
from airflow_provider_codecheck.core.models import DefectStatistic, DefectSummary, RunResult, TaskProgress
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


# One gate per AK/SK key not yet accepted by the gateway: its requests go one at a time (see ClientBase).
_AKSK_GATES: dict[iam.AkSkKey, threading.Lock] = {}


def _aksk_gate(key: iam.AkSkKey) -> threading.Lock:
    with _TOKEN_LOCKS_GUARD:
        return _AKSK_GATES.setdefault(key, threading.Lock())


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
        self._session.verify = settings.verify
        self._session.trust_env = True
        if settings.proxy:
            self._session.proxies = {"http": settings.proxy, "https": settings.proxy}

    def close(self) -> None:
        self._session.close()

    def execute(self, op: Operation[T]) -> T:
        return run_flow(core_flow.perform(op, self.settings, self.policy, self.ctx), self._answer)

    # The operations, by name.
    def get_task_progress(self, task_id: str, job_id: str | None = None) -> TaskProgress:
        return self.execute(ops.get_task_progress(task_id, job_id))

    def run_task(self, task_id: str, body: dict[str, object] | None = None) -> RunResult:
        return self.execute(ops.run_task(task_id, body))

    def stop_task(self, task_id: str) -> None:
        self.execute(ops.stop_task(task_id))

    def get_defects_summary(self, task_id: str) -> DefectSummary:
        return self.execute(ops.get_defects_summary(task_id))

    def get_defects_statistic(self, task_id: str) -> DefectStatistic:
        return self.execute(ops.get_defects_statistic(task_id))

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
            if not self._needs_gate(effect):
                outcome: object = self._send(effect.request)
            else:
                assert effect.credential is not None
                with _aksk_gate(effect.credential):
                    outcome = self._withheld(effect) or self._send(effect.request)
                    self._learn(effect, outcome)
                return outcome
            self._learn(effect, outcome)
            return outcome
        if isinstance(effect, core_flow.Sleep):
            time.sleep(effect.seconds)
            return None
        return self.token(effect.stale, effect.fetch)

    def _send(self, request: HttpRequest) -> HttpResponse | TransportFailure:
        timeout = self.settings.timeout
        try:
            response = self._session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body or None,
                timeout=(min(timeout, 10.0), timeout),
                allow_redirects=False,
                # Explicitly: with trust_env, REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE would override session.verify,
                # silently ignoring the connection's ca_bundle or verify=false.
                verify=self.settings.verify,
            )
        except requests.exceptions.SSLError as exc:
            return TransportFailure("tls", type(exc).__name__, maybe_processed=False)
        except requests.exceptions.ConnectTimeout:
            return TransportFailure("connect", "connect timeout", maybe_processed=False)
        except requests.exceptions.ReadTimeout:
            return TransportFailure("timeout", f"no reply within {timeout:g}s", maybe_processed=True)
        except requests.exceptions.ConnectionError as exc:
            refused = "NewConnectionError" in repr(exc) or "NameResolutionError" in repr(exc)
            kind = "connect" if refused else "reset"
            return TransportFailure(kind, _describe(exc), maybe_processed=not refused)
        except requests.exceptions.RequestException as exc:  # chunked/decoding errors mid-body
            return TransportFailure("reset", _describe(exc), maybe_processed=True)
        headers = {name.lower(): value for name, value in response.headers.items()}
        return HttpResponse(response.status_code, headers, response.content)


def _describe(exc: BaseException) -> str:
    """Name the chain of causes (e.g. ``ConnectionError <- ConnectionResetError``), not the URL or headers."""
    names: list[str] = []
    reason: BaseException | None = exc
    while reason is not None and len(names) < 4:
        names.append(type(reason).__name__)
        reason = reason.__cause__ or reason.__context__
    return " <- ".join(names)
