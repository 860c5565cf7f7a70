"""IAM user-password tokens: the request, the reply, and the process-wide token cache."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_codecheck.core.errors import AuthenticationError, InvalidResponseError
from airflow_provider_codecheck.core.http import ApiCall, HttpResponse
from airflow_provider_codecheck.core.models import IamToken
from airflow_provider_codecheck.core.responses import decode, require_dict
from airflow_provider_codecheck.core.settings import PasswordAuth

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
        moment = moment.replace(tzinfo=timezone.utc)
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
