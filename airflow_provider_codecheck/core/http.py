"""HTTP messages as plain data, and turning an operation into signed bytes on the wire."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_codecheck import __version__
from airflow_provider_codecheck.core import signing
from airflow_provider_codecheck.core.settings import AkSkAuth, ConnectionSettings, TokenAuth

USER_AGENT = f"airflow-provider-codecheck/{__version__}"
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class ApiCall:
    """What to ask, before authentication: method, path (already percent-encoded), query, JSON body."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: Any = field(default=None, repr=False)
    """May hold secrets: the IAM password (token request), a repository access_token (run)."""
    idempotent: bool = True


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes = field(repr=False)

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id")


@dataclass(frozen=True)
class TransportFailure:
    """What a transport reports instead of a response. ``kind``: connect, timeout, reset, tls, too_large.

    ``status`` and ``request_id``: for ``too_large``, what the reply's head said before its body was refused.
    """

    kind: str
    detail: str
    maybe_processed: bool
    status: int | None = None
    request_id: str | None = None


MAX_RESPONSE_BYTES = 10 * 1024 * 1024
"""Largest reply body read (after decompression): the answers this provider reads are a few KiB."""

READ_CHUNK = 64 * 1024


class BodyBuffer:
    """Collects a reply body chunk by chunk and refuses it past ``limit`` bytes (both transports use it).

    A body announced (Content-Length) or found larger than the cap is never held in memory: the transport
    stops reading, drops the connection and reports ``too_large``.
    """

    def __init__(self, status: int, headers: dict[str, str], limit: int = MAX_RESPONSE_BYTES) -> None:
        self.status = status
        self.headers = headers
        self.limit = limit
        self.size = 0
        self._chunks: list[bytes] = []

    def announced_too_large(self) -> TransportFailure | None:
        try:
            announced = int(self.headers.get("content-length", ""))
        except ValueError:
            return None
        return self._too_large(f"announces {announced} bytes") if announced > self.limit else None

    def add(self, chunk: bytes) -> TransportFailure | None:
        self.size += len(chunk)
        if self.size > self.limit:
            self._chunks.clear()
            return self._too_large(f"exceeded it after {self.size} bytes")
        self._chunks.append(chunk)
        return None

    def response(self) -> HttpResponse:
        return HttpResponse(self.status, self.headers, b"".join(self._chunks))

    def _too_large(self, what: str) -> TransportFailure:
        # The status tells whether the request took effect (a 2xx run did start a scan).
        return TransportFailure(
            "too_large",
            f"HTTP {self.status} reply {what}; the cap is {self.limit} bytes",
            maybe_processed=not 400 <= self.status < 500,
            status=self.status,
            request_id=self.headers.get("x-request-id"),
        )


def quote_path_param(value: str) -> str:
    # Like the SDK: nothing is safe, so "/" cannot change the route.
    return quote(value, safe="")


def encode_body(body: Any) -> bytes:
    if body is None:
        return b""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def build_request(
    call: ApiCall,
    base_url: str,
    settings: ConnectionSettings,
    token: str | None,
    now: datetime,
    user_agent: str = USER_AGENT,
) -> HttpRequest:
    """Attach authentication to a call. ``token`` is the IAM token for password auth (None: send none)."""
    body = encode_body(call.body)
    query = signing.canonical_query(call.query)
    url = base_url + call.path + (f"?{query}" if query else "")
    headers = {"Content-Type": JSON_CONTENT_TYPE, "User-Agent": user_agent}
    auth = settings.auth
    if isinstance(auth, AkSkAuth):
        headers["Host"] = urlsplit(base_url).netloc
        headers[signing.DATE_HEADER] = signing.format_sdk_date(now)
        if auth.project_id:
            headers["X-Project-Id"] = auth.project_id
        if auth.security_token:
            headers["X-Security-Token"] = auth.security_token
        headers["Authorization"] = signing.authorization_header(
            auth.access_key, auth.secret_key, call.method, call.path, call.query, headers, body
        )
    elif isinstance(auth, TokenAuth):
        headers["X-Auth-Token"] = auth.token
    elif token:
        headers["X-Auth-Token"] = token
    return HttpRequest(call.method, url, headers, body)


def utc_now() -> datetime:
    return datetime.now(UTC)
