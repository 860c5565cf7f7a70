"""IAM credentials: user-password tokens (request, reply, process-wide cache) and the memo of rejected ones."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_provider_codecheck.core.errors import AuthenticationError, CodeCheckError, InvalidResponseError
from airflow_provider_codecheck.core.http import ApiCall, HttpResponse
from airflow_provider_codecheck.core.models import IamToken
from airflow_provider_codecheck.core.responses import decode, require_dict
from airflow_provider_codecheck.core.settings import AkSkAuth, PasswordAuth

# Refresh this long before expiry (at most 15 minutes, at most a tenth of the token's life).
_MAX_REFRESH_MARGIN = 900.0


def token_call(auth: PasswordAuth) -> ApiCall:
    scope: dict[str, Any] = (
        {"project": {"name": auth.project}} if auth.project else {"domain": {"name": auth.domain}}
    )
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": auth.user, "password": auth.password, "domain": {"name": auth.domain}}
                },
            },
            "scope": scope,
        }
    }
    # Idempotent in effect: a second token request only issues another valid token.
    return ApiCall("POST", "/v3/auth/tokens", (("nocatalog", "true"),), body)


def parse_iam_time(value: Any) -> float:
    if not isinstance(value, str):
        raise InvalidResponseError(f"IAM token time {value!r} is not a string")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidResponseError(f"IAM token time {value!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_token_response(response: HttpResponse, auth: PasswordAuth) -> IamToken:
    try:
        body = require_dict(decode(response), "IAM token")
    except AuthenticationError as error:
        # IAM's own message is generic; name who was rejected (never the password).
        error.message = f"IAM rejected user {auth.user!r} of domain {auth.domain!r}: {error.message}"
        raise
    token = response.headers.get("x-subject-token")
    if not token:
        raise InvalidResponseError("IAM reply has no X-Subject-Token header", request_id=response.request_id)
    info = body.get("token")
    if not isinstance(info, dict):
        raise InvalidResponseError("IAM reply has no token object", request_id=response.request_id)
    expires_at = parse_iam_time(info.get("expires_at"))
    issued_raw = info.get("issued_at")
    issued_at = parse_iam_time(issued_raw) if issued_raw else expires_at - 86400
    return IamToken(token=token, expires_at=expires_at, issued_at=issued_at)


CacheKey = tuple[str, str, str, str, str]


def cache_key(auth: PasswordAuth, iam_endpoint: str) -> CacheKey:
    # The password digest keeps a connection with a wrong password from borrowing another's token.
    digest = hashlib.sha256(auth.password.encode("utf-8")).hexdigest()
    return (iam_endpoint, auth.domain, auth.user, auth.project or "", digest)


@dataclass
class TokenCache:
    """Tokens by (IAM endpoint, domain, user, scope, password digest). Locking is the transports' job."""

    def __post_init__(self) -> None:
        self._tokens: dict[CacheKey, IamToken] = {}

    def fresh(self, key: CacheKey, now: float) -> IamToken | None:
        token = self._tokens.get(key)
        if token is None:
            return None
        margin = min(_MAX_REFRESH_MARGIN, 0.1 * max(0.0, token.expires_at - token.issued_at))
        return token if now < token.expires_at - margin else None

    def store(self, key: CacheKey, token: IamToken) -> None:
        self._tokens[key] = token

    def invalidate(self, key: CacheKey, token: str | None) -> None:
        """Drop the cached token if it is the one that was rejected (another caller may have refreshed it)."""
        current = self._tokens.get(key)
        if current is not None and (token is None or current.token == token):
            del self._tokens[key]

    def clear(self) -> None:
        self._tokens.clear()


TOKEN_CACHE = TokenCache()


# --- credentials the service rejected: AK/SK (gateway) and IAM passwords ------------------------------------

REJECTED_CREDENTIAL_HOLD_S = 600.0
"""How long rejected credentials stay refused in this process without another request being sent.

The gateway locks an AK for 5 minutes (300 s) after 5 failed authentications in a row, for every caller of
that AK (IAM's account lock-out policy likewise locks a user after repeated failed logins). Holding a
rejection for 10 minutes means this process adds at most one failure per 10 minutes, never reaching a lock on
its own, and a lock caused elsewhere has expired by the time we try again; an account that was fixed (AK
re-enabled, arrears paid, password reset to the connection's) recovers within 10 minutes without a restart.
*Changed* credentials in the connection (SK, security token, password) are another key, used at once.
"""

CredentialKey = tuple[str, ...]
"""("aksk", endpoint, AK, digest) or ("password", IAM endpoint, domain, user, scope, digest): no secret."""


def aksk_key(auth: AkSkAuth, endpoint: str) -> CredentialKey:
    """(kind, endpoint, AK, digest of SK and security token): never the secret itself."""
    secret = f"{auth.secret_key}\0{auth.security_token or ''}".encode()
    return ("aksk", endpoint, auth.access_key, hashlib.sha256(secret).hexdigest())


def password_key(auth: PasswordAuth, iam_endpoint: str) -> CredentialKey:
    """(kind, *the token cache key): the password only as its digest."""
    return ("password", *cache_key(auth, iam_endpoint))


_FIX_HINTS = {
    "aksk": (
        "the gateway rejected this connection's AK/SK",
        "each failed signature counts toward the gateway's lock-out of the AK for 5 minutes after 5 failures, "
        "for every caller",
        "Fix the SK in the connection: a changed SK is used at once",
    ),
    "password": (
        "IAM rejected this connection's user name or password",
        "repeated failed logins can lock the IAM user",
        "Fix the password in the connection: a changed password is used at once",
    ),
}


@dataclass(frozen=True)
class Rejection:
    """What the service said when it rejected credentials (its code, message and request id; no secret)."""

    kind: str
    at: float
    """Monotonic time of the rejection."""
    status: int
    error_code: str | None
    error_msg: str | None
    request_id: str | None

    def error(self, now: float, hold_s: float) -> AuthenticationError:
        who, why, fix = _FIX_HINTS[self.kind]
        left = max(0.0, self.at + hold_s - now)
        return AuthenticationError(
            f"{who} {now - self.at:.0f}s ago; not sent again for {left:.0f}s ({why}). {fix}",
            status=self.status,
            error_code=self.error_code,
            error_msg=self.error_msg,
            request_id=self.request_id,
        )


@dataclass(frozen=True)
class Withheld:
    """A transport's answer to ``Send`` when the request was not sent: its credentials are known to be rejected."""

    rejection: Rejection
    now: float
    hold_s: float

    def error(self) -> AuthenticationError:
        return self.rejection.error(self.now, self.hold_s)


class CredentialMemo:
    """Process-wide memo of credentials: trusted (the service accepted them) or rejected (when, with what).

    Thread-safe (a plain lock around dict operations, never held across I/O), so worker threads and the
    triggerer's event loops share it. Transports consult it around each AK/SK-signed request and each IAM
    password request: a key not yet trusted is probed by one request at a time, so concurrent first calls with
    a wrong SK or password cost one failure, not N.
    """

    def __init__(self, hold_s: float = REJECTED_CREDENTIAL_HOLD_S) -> None:
        self.hold_s = hold_s
        self._lock = threading.Lock()
        self._trusted: set[CredentialKey] = set()
        self._rejected: dict[CredentialKey, Rejection] = {}

    def trusted(self, key: CredentialKey) -> bool:
        with self._lock:
            return key in self._trusted

    def withheld(self, key: CredentialKey, now: float) -> Withheld | None:
        """The rejection to answer with instead of sending, or None when a request may be sent."""
        with self._lock:
            rejection = self._rejected.get(key)
            if rejection is None:
                return None
            if now - rejection.at >= self.hold_s:
                del self._rejected[key]  # time to find out whether the account was fixed
                return None
            return Withheld(rejection, now, self.hold_s)

    def observe(self, key: CredentialKey, outcome: object, now: float) -> None:
        """Learn from the outcome of a request: a 401 rejects the key, any other reply trusts it."""
        if not isinstance(outcome, HttpResponse):
            return  # no reply: nothing learned
        with self._lock:
            if outcome.status == 401:
                code, msg = _error_of(outcome)
                self._trusted.discard(key)
                self._rejected[key] = Rejection(key[0], now, outcome.status, code, msg, outcome.request_id)
            else:
                self._trusted.add(key)
                self._rejected.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._trusted.clear()
            self._rejected.clear()


def _error_of(response: HttpResponse) -> tuple[str | None, str | None]:
    try:
        decode(response)
    except CodeCheckError as error:
        return error.error_code, error.error_msg
    return None, None


CREDENTIAL_MEMO = CredentialMemo()
