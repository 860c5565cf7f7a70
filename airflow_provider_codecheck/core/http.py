"""HTTP messages as plain data, and turning an operation into signed bytes on the wire."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
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
    """What a transport reports instead of a response. ``kind``: connect, timeout, reset, tls."""

    kind: str
    detail: str
    maybe_processed: bool


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
    return datetime.now(timezone.utc)
