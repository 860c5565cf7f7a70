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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.core.budget import Budget, Ticket
from airflow_provider_codecheck.core.budgets import BUDGETS, Budgets, budget_key, stated_limit
from airflow_provider_codecheck.core.errors import (
    CodeCheckError,
    InvalidResponseError,
    ResponseTooLargeError,
    TlsVerificationError,
    TransportError,
    rejects_token,
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
from airflow_provider_codecheck.core.responses import decode, parse_retry_after
from airflow_provider_codecheck.core.retry import RetryPolicy
from airflow_provider_codecheck.core.settings import AkSkAuth, ConnectionSettings, PasswordAuth

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    request: HttpRequest
    credential: iam.CredentialKey | None = field(default=None, repr=False)
    """For AK/SK-signed requests and IAM password requests: the key of ``iam.CREDENTIAL_MEMO`` to consult (probe
    one at a time while not trusted, answer ``iam.Withheld`` instead of sending while rejected) and to teach."""


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class NeedToken:
    """Ask for a valid IAM token; ``stale`` is the token the service just rejected (None: any cached one).

    ``fetch=False``: only drop ``stale`` from the cache (answer None): a token rejected right after renewal.
    """

    stale: str | None
    fetch: bool = True


Effect = Send | Sleep | NeedToken
Flow = Generator[Effect, Any, T]


@dataclass(frozen=True)
class Context:
    """What a flow reads from its surroundings: clocks, randomness, the User-Agent; replaceable in tests."""

    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = utc_now
    rand: Callable[[], float] = random.random
    user_agent: str = USER_AGENT
    budgets: Budgets | None = BUDGETS
    """The process-wide request budgets (core/budget.py); None: calls are not paced."""


DEFAULT_CONTEXT = Context()


def transport_error(failure: TransportFailure, url: str) -> CodeCheckError:
    if failure.kind == "tls":
        return TlsVerificationError(
            f"TLS verification of {url} failed ({failure.detail}); if the endpoint uses a private CA, "
            "set the connection extra 'ca_bundle' to its PEM file"
        )
    if failure.kind == "too_large":
        return ResponseTooLargeError(
            f"reply from {url} is too large: {failure.detail}",
            status=failure.status,
            request_id=failure.request_id,
        )
    return TransportError(f"{failure.kind} error talking to {url}: {failure.detail}")


Outcome = HttpResponse | TransportFailure | iam.Withheld


def _read(outcome: Outcome, url: str, interpret: Callable[[HttpResponse], T]) -> T:
    if isinstance(outcome, iam.Withheld):
        raise outcome.error()
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


def admitted(budget: Budget) -> Flow[Ticket]:
    """Wait (``Sleep``) for this call's turn in ``budget``: callers are served in the order they asked.

    A caller that stops waiting (the flow is closed: cancelled task, deadline) gives its turn to the next.
    """
    ticket = budget.enter()
    try:
        while (wait := budget.acquire(ticket)) > 0:
            yield Sleep(wait)
    finally:
        if ticket.granted_at is None:
            budget.leave(ticket)
    return ticket


def observe(budget: Budget, ticket: Ticket, outcome: Outcome, ctx: Context) -> None:
    """Teach ``budget`` the answer: a 429 (and its Retry-After) slows and may pause it; a reply probes up."""
    if isinstance(outcome, HttpResponse):
        if outcome.status != 429:
            budget.observe(ticket, False)
            return
        retry_after = parse_retry_after(outcome.headers.get("retry-after"), ctx.now())
        budget.observe(ticket, True, retry_after, stated_limit(outcome.body))


def attempts(
    name: str,
    build: Callable[[], Send],
    read: Callable[[Outcome, str], T],
    idempotent: bool,
    policy: RetryPolicy,
    ctx: Context,
    renew: Callable[[bool], Flow[None]] | None = None,
    budget: Budget | None = None,
) -> Flow[T]:
    """Send ``build()`` until ``read`` accepts the outcome or the policy gives up.

    ``renew(fetch)``: the IAM token just sent was rejected (401 CC.00000003, APIG(W).0301, APIG(W).0307).
    The first time, drop it from the cache and get ONE new token, then try again at once (using up an
    attempt). A renewed token rejected again is final: drop it too (no later call reuses it) and raise the
    permanent AuthenticationError; a retry or an IAM storm would not fix a revoked user or a frozen account.
    """
    started = ctx.monotonic()
    attempt = 0
    renewed = False
    while True:
        attempt += 1
        ticket = (yield from admitted(budget)) if budget is not None else None
        send = build()
        outcome = yield send
        if budget is not None and ticket is not None:
            observe(budget, ticket, outcome, ctx)
        try:
            return read(outcome, send.request.url.split("?", 1)[0])
        except CodeCheckError as error:
            if renew is not None and rejects_token(error):
                if not renewed and attempt < policy.max_attempts:
                    renewed = True
                    yield from renew(True)
                    continue
                yield from renew(False)
                error.retryable = False
            delay = policy.next_delay(error, attempt, ctx.monotonic() - started, idempotent, ctx.rand)
            if delay is None:
                error.attempts = attempt
                error.operation = error.operation or name
                raise
            yield Sleep(delay)


def perform(
    op: Operation[T], settings: ConnectionSettings, policy: RetryPolicy, ctx: Context = DEFAULT_CONTEXT
) -> Flow[T]:
    """Run one CodeArts Check operation; with IAM-password auth, renew a rejected token once."""
    needs_token = isinstance(settings.auth, PasswordAuth)
    token: str | None = (yield NeedToken(stale=None)) if needs_token else None
    credential = (
        iam.aksk_key(settings.auth, settings.endpoint) if isinstance(settings.auth, AkSkAuth) else None
    )

    def build() -> Send:
        request = build_request(op.call, settings.endpoint, settings, token, ctx.now(), ctx.user_agent)
        return Send(request, credential)

    def read(outcome: Outcome, url: str) -> T:
        return _read(outcome, url, lambda response: op.parse(decode(response, ctx.now())))

    def renew(fetch: bool) -> Flow[None]:
        nonlocal token
        fresh = yield NeedToken(stale=token, fetch=fetch)
        if fetch:
            token = fresh

    name = f"{op.name} {op.call.method} {op.call.path}"
    budget = (
        None
        if ctx.budgets is None
        else ctx.budgets.get(budget_key(settings), settings.max_requests_per_second)
    )
    return (
        yield from attempts(
            name, build, read, op.call.idempotent, policy, ctx, renew if needs_token else None, budget
        )
    )


def fetch_token(
    auth: PasswordAuth, iam_endpoint: str, settings: ConnectionSettings, policy: RetryPolicy, ctx: Context
) -> Flow[IamToken]:
    """Obtain an IAM user token (POST /v3/auth/tokens) under the same retry policy."""
    call: ApiCall = iam.token_call(auth)

    def build() -> Send:
        # No token yet: the password in the body is the credential.
        request = build_request(call, iam_endpoint, settings, None, ctx.now(), ctx.user_agent)
        return Send(request, iam.password_key(auth, iam_endpoint))

    def read(outcome: Outcome, url: str) -> IamToken:
        return _read(outcome, url, lambda response: iam.parse_token_response(response, auth))

    return (yield from attempts("IAM token POST /v3/auth/tokens", build, read, True, policy, ctx))
