"""Sans-I/O call flows: generators that *ask* a transport to send, sleep or fetch a token.

A transport drives a flow with ``send()``: for ``Send`` it returns an ``HttpResponse`` or a
``TransportFailure``; for ``Sleep`` it waits; for ``NeedToken`` it returns a token string (single-flight,
from the cache or IAM). Retries, token refresh and error classification happen here once, so the
requests and aiohttp transports cannot drift apart.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.core.errors import (
    CodeCheckError,
    InvalidResponseError,
    TlsVerificationError,
    TokenExpiredError,
    TransportError,
)
from airflow_provider_codecheck.core.http import (
    USER_AGENT,
    ApiCall,
    HttpRequest,
    HttpResponse,
    TransportFailure,
    build_request,
    utc_now,
)
from airflow_provider_codecheck.core.models import IamToken
from airflow_provider_codecheck.core.operations import Operation
from airflow_provider_codecheck.core.responses import decode
from airflow_provider_codecheck.core.retry import RetryPolicy
from airflow_provider_codecheck.core.settings import ConnectionSettings, PasswordAuth

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    request: HttpRequest


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class NeedToken:
    """Ask for a valid IAM token; ``stale`` is the token the service just rejected (None: any cached one)."""

    stale: str | None


Effect = Send | Sleep | NeedToken
Flow = Generator[Effect, Any, T]


@dataclass(frozen=True)
class Context:
    """What a flow reads from its surroundings: clocks, randomness, the User-Agent; replaceable in tests."""

    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = utc_now
    rand: Callable[[], float] = random.random
    user_agent: str = USER_AGENT


DEFAULT_CONTEXT = Context()


def transport_error(failure: TransportFailure, url: str) -> CodeCheckError:
    if failure.kind == "tls":
        return TlsVerificationError(
            f"TLS verification of {url} failed ({failure.detail}); if the endpoint uses a private CA, "
            "set the connection extra 'ca_bundle' to its PEM file"
        )
    return TransportError(f"{failure.kind} error talking to {url}: {failure.detail}")


def _read(outcome: HttpResponse | TransportFailure, url: str, interpret: Callable[[HttpResponse], T]) -> T:
    if isinstance(outcome, TransportFailure):
        error = transport_error(outcome, url)
        error.maybe_processed = outcome.maybe_processed
        raise error
    try:
        return interpret(outcome)
    except InvalidResponseError as error:
        # A 2xx we cannot read may still have taken effect (a started scan).
        error.maybe_processed = 200 <= outcome.status < 300
        error.request_id = error.request_id or outcome.request_id
        error.status = error.status or outcome.status
        raise


def attempts(
    name: str,
    build: Callable[[], HttpRequest],
    read: Callable[[HttpResponse | TransportFailure, str], T],
    idempotent: bool,
    policy: RetryPolicy,
    ctx: Context,
    renew: Callable[[], Flow[None]] | None = None,
) -> Flow[T]:
    """Send ``build()`` until ``read`` accepts the outcome or the policy gives up.

    ``renew``: on 401 CC.00000003, fetch a new token and try again at once; each renewal uses up an attempt.
    """
    started = ctx.monotonic()
    attempt = 0
    while True:
        attempt += 1
        request = build()
        outcome = yield Send(request)
        try:
            return read(outcome, request.url.split("?", 1)[0])
        except CodeCheckError as error:
            if renew is not None and isinstance(error, TokenExpiredError):
                if attempt < policy.max_attempts:
                    yield from renew()
                    continue
                if attempt > 1:
                    # IAM granted every renewal, yet the service expired the fresh tokens too (a mass
                    # revocation, not bad credentials): give up on this call, but let a caller that polls
                    # (a wait, a sensor) try again later instead of ending on a permanent error.
                    error.retryable = True
            delay = policy.next_delay(error, attempt, ctx.monotonic() - started, idempotent, ctx.rand)
            if delay is None:
                error.attempts = attempt
                error.operation = error.operation or name
                raise
            yield Sleep(delay)


def perform(
    op: Operation[T], settings: ConnectionSettings, policy: RetryPolicy, ctx: Context = DEFAULT_CONTEXT
) -> Flow[T]:
    """Run one CodeArts Check operation; with IAM-password auth, refresh the token on 401 CC.00000003."""
    needs_token = isinstance(settings.auth, PasswordAuth)
    token: str | None = (yield NeedToken(stale=None)) if needs_token else None

    def build() -> HttpRequest:
        return build_request(op.call, settings.endpoint, settings, token, ctx.now(), ctx.user_agent)

    def read(outcome: HttpResponse | TransportFailure, url: str) -> T:
        return _read(outcome, url, lambda response: op.parse(decode(response, ctx.now())))

    def renew() -> Flow[None]:
        nonlocal token
        token = yield NeedToken(stale=token)

    name = f"{op.name} {op.call.method} {op.call.path}"
    return (
        yield from attempts(
            name, build, read, op.call.idempotent, policy, ctx, renew if needs_token else None
        )
    )


def fetch_token(
    auth: PasswordAuth, iam_endpoint: str, settings: ConnectionSettings, policy: RetryPolicy, ctx: Context
) -> Flow[IamToken]:
    """Obtain an IAM user token (POST /v3/auth/tokens) under the same retry policy."""
    call: ApiCall = iam.token_call(auth)

    def build() -> HttpRequest:
        # No token yet: the password in the body is the credential.
        return build_request(call, iam_endpoint, settings, None, ctx.now(), ctx.user_agent)

    def read(outcome: HttpResponse | TransportFailure, url: str) -> IamToken:
        return _read(outcome, url, lambda response: iam.parse_token_response(response, auth))

    return (yield from attempts("IAM token POST /v3/auth/tokens", build, read, True, policy, ctx))
