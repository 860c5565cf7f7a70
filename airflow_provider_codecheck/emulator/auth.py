"""Authentication of CodeArts Check requests: IAM tokens (``X-Auth-Token``) and AK/SK signatures.

AK/SK requests are verified by recomputing the signature with ``core.signing``, the same code the provider
signs with, so the emulator checks exactly the bytes a real client sends.

Error codes (401 in every case):

* token missing from the store or expired → ``CC.00000003`` (CodeArts' documented "authentication expired");
* token revoked through the admin API → the code it was revoked with (``APIGW.0301`` by default);
* no credentials, unknown AK, bad signature, bad security token → ``APIGW.0301`` (APIG's IAM-auth failure);
* ``X-Sdk-Date`` missing, unsigned, malformed or more than 15 minutes off → ``APIGW.0303``;
* an AK with ``lock_threshold`` (5) failed authentications in a row is locked for ``lock_s`` (300 s, emulator
  clock): every request with it → ``APIGW.0301`` "...AK access failed to reach the limit,forbidden".
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from multidict import CIMultiDictProxy

from airflow_provider_codecheck.core import signing
from airflow_provider_codecheck.emulator.defaults import AccessKey
from airflow_provider_codecheck.emulator.faults import TOKEN_REJECTION_MESSAGES

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class TokenStore:
    """Tokens this emulator issued, with their expiry on the emulator's monotonic clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._expiry: dict[str, float] = {}
        self._revoked: dict[str, str] = {}

    def issue(self, lifetime_s: float) -> str:
        # Real IAM tokens are long base64 blobs starting with "MII"; clients should not parse them anyway.
        token = "MII" + secrets.token_urlsafe(96)
        self._expiry[token] = self.clock() + lifetime_s
        return token

    def is_valid(self, token: str) -> bool:
        expiry = self._expiry.get(token)
        return expiry is not None and self.clock() < expiry

    def revoke(self, tokens: Iterable[str] | None, code: str) -> list[str]:
        """Reject these tokens (None: every token issued so far) with ``code`` from now on."""
        chosen = list(self._expiry) if tokens is None else list(tokens)
        for token in chosen:
            self._revoked[token] = code
        return chosen

    def revoked_code(self, token: str) -> str | None:
        return self._revoked.get(token)

    def expire_all(self) -> None:
        now = self.clock()
        self._expiry = dict.fromkeys(self._expiry, now)

    def clear(self) -> None:
        self._expiry.clear()
        self._revoked.clear()


@dataclass(frozen=True)
class AuthFailure:
    error_code: str
    error_msg: str
    # The AK of a failed AK/SK authentication (None for tokens or an unparsable Authorization header).
    access_key: str | None = None


TOKEN_EXPIRED = AuthFailure("CC.00000003", "Authentication information expired.")
AK_LOCKED_REASON = "AK access failed to reach the limit,forbidden"


def _aksk_failure(reason: str) -> AuthFailure:
    return AuthFailure("APIGW.0301", f"Incorrect IAM authentication information: {reason}")


def _date_failure(reason: str) -> AuthFailure:
    return AuthFailure("APIGW.0303", f"Incorrect IAM authentication information: {reason}")


def token_rejection(code: str) -> AuthFailure:
    return AuthFailure(code, TOKEN_REJECTION_MESSAGES[code])


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request that the signature covers."""

    method: str
    path: str
    query: Iterable[tuple[str, str]]
    headers: CIMultiDictProxy[str]
    body: bytes


class Authenticator:
    def __init__(
        self,
        tokens: TokenStore,
        access_keys: dict[str, AccessKey],
        max_skew_s: float,
        wall_clock: WallClock = utc_now,
        clock: Callable[[], float] = time.monotonic,
        lock_threshold: int = 5,
        lock_s: float = 300.0,
    ) -> None:
        self.tokens = tokens
        self.access_keys = access_keys
        self.max_skew_s = max_skew_s
        self.wall_clock = wall_clock
        self.clock = clock
        self.lock_threshold = lock_threshold
        self.lock_s = lock_s
        self._streak: dict[str, int] = {}  # failed AK/SK authentications in a row, per AK
        self._locked_until: dict[str, float] = {}

    def reset(self) -> None:
        self._streak.clear()
        self._locked_until.clear()

    def locked_keys(self) -> list[str]:
        now = self.clock()
        return sorted(ak for ak, until in self._locked_until.items() if now < until)

    def check(self, request: SignedRequest) -> AuthFailure | None:
        """Return None when the request is authenticated, else why not."""
        token = request.headers.get("X-Auth-Token")
        if token is not None:
            revoked = self.tokens.revoked_code(token)
            if revoked is not None:
                return token_rejection(revoked)
            return None if self.tokens.is_valid(token) else TOKEN_EXPIRED
        authorization = request.headers.get("Authorization")
        if authorization is None:
            return _aksk_failure("no X-Auth-Token or Authorization header")
        try:
            access_key, signed_headers, claimed = signing.parse_authorization(authorization)
        except ValueError as err:
            return _aksk_failure(f"malformed Authorization header ({err})")
        now = self.clock()
        if now < self._locked_until.get(access_key, float("-inf")):
            return AuthFailure("APIGW.0301", _aksk_failure(AK_LOCKED_REASON).error_msg, access_key)
        failure = self._check_signature(request, access_key, signed_headers, claimed)
        if failure is None:
            self._streak.pop(access_key, None)
            return None
        streak = self._streak.get(access_key, 0) + 1
        if streak >= self.lock_threshold:
            # The gateway locks the AK for every caller; the streak starts again once the lock is over.
            self._locked_until[access_key] = now + self.lock_s
            streak = 0
        self._streak[access_key] = streak
        return AuthFailure(failure.error_code, failure.error_msg, access_key)

    def _check_signature(
        self, request: SignedRequest, access_key: str, signed_headers: list[str], claimed: str
    ) -> AuthFailure | None:
        key = self.access_keys.get(access_key)
        if key is None:
            # Huawei's wording, with the AK masked as in its FAQ (gateway-and-quotas.md).
            return _aksk_failure("Get secretKey failed,ak:***,err:ak not exist")
        if key.security_token is not None and request.headers.get("X-Security-Token") != key.security_token:
            return _aksk_failure("security token invalid")
        if key.security_token is None and "X-Security-Token" in request.headers:
            return _aksk_failure("security token invalid")
        date_failure = self._check_date(request, signed_headers)
        if date_failure is not None:
            return date_failure
        headers = {name: ", ".join(request.headers.getall(name)) for name in request.headers}
        canonical = signing.canonical_request(
            request.method, request.path, request.query, headers, request.body, signed_headers
        )
        to_sign = signing.string_to_sign(canonical, request.headers[signing.DATE_HEADER])
        expected = signing.signature(key.secret_key, to_sign)
        if not hmac.compare_digest(expected, claimed):
            return _aksk_failure("verify aksk signature fail")
        return None

    def _check_date(self, request: SignedRequest, signed_headers: list[str]) -> AuthFailure | None:
        value = request.headers.get(signing.DATE_HEADER)
        if value is None or signing.DATE_HEADER.lower() not in signed_headers:
            return _date_failure(f"{signing.DATE_HEADER} must be present and signed")
        try:
            moment = signing.parse_sdk_date(value)
        except ValueError:
            return _date_failure(f"{signing.DATE_HEADER} is malformed")
        if abs((self.wall_clock() - moment).total_seconds()) > self.max_skew_s:
            return _date_failure(f"{signing.DATE_HEADER} is more than {self.max_skew_s:g} s off")
        return None
