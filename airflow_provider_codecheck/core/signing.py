"""AK/SK request signing, ``SDK-HMAC-SHA256``, byte for byte as ``huaweicloudsdkcore`` signs.

Pure functions: the caller supplies the clock value, so signatures are reproducible in tests and the emulator can
verify a request by recomputing the same canonical request.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
CONTENT_SHA256_HEADER = "X-Sdk-Content-Sha256"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


def format_sdk_date(moment: datetime) -> str:
    """Render a moment as the ``X-Sdk-Date`` header value (UTC, ``YYYYMMDDTHHMMSSZ``)."""
    return moment.astimezone(UTC).strftime(DATE_FORMAT)


def parse_sdk_date(value: str) -> datetime:
    """Parse an ``X-Sdk-Date`` value; raises ValueError when it is malformed."""
    return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC)


def canonical_uri(path: str) -> str:
    # The SDK decodes the whole path, splits it, re-encodes each segment with only "~" safe, and always
    # ends the URI with "/". (So an encoded "/" signs as a separator; task ids may not contain one.)
    segments = [quote(segment, safe="~") for segment in unquote(path).split("/")]
    uri = "/".join(segments)
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Sorted, percent-encoded query string; it is also the query the request must be sent with."""
    # Sorted before encoding, as the SDK does.
    return "&".join(f"{quote(key, safe='~')}={quote(value, safe='~')}" for key, value in sorted(params))


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    # Headers whose names contain "_" are never signed (gateways may drop them).
    return sorted(name.lower() for name in headers if "_" not in name)


def _header_lookup(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    signed_headers: list[str] | None = None,
) -> str:
    lower = _header_lookup(headers)
    names = signed_headers if signed_headers is not None else signed_header_names(headers)
    if not body:
        payload_hash = EMPTY_BODY_SHA256
    else:
        payload_hash = lower.get(CONTENT_SHA256_HEADER.lower()) or hashlib.sha256(body).hexdigest()
    header_block = "\n".join(f"{name}:{lower.get(name, '').strip()}" for name in names) + "\n"
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            header_block,
            ";".join(names),
            payload_hash,
        ]
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def signature(secret_key: str, to_sign: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(
    access_key: str,
    secret_key: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """Compute the ``Authorization`` value. ``headers`` must already hold ``Host`` and ``X-Sdk-Date``."""
    sdk_date = _header_lookup(headers).get(DATE_HEADER.lower())
    if not sdk_date:
        raise ValueError(f"{DATE_HEADER} header must be set before signing")
    names = signed_header_names(headers)
    canonical = canonical_request(method, path, query, headers, body, names)
    sig = signature(secret_key, string_to_sign(canonical, sdk_date))
    return f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(names)}, Signature={sig}"


def parse_authorization(value: str) -> tuple[str, list[str], str]:
    """Split an ``Authorization`` header into (access key, signed header names, signature).

    Raises ValueError when the header is not an SDK-HMAC-SHA256 authorization.
    """
    prefix = ALGORITHM + " "
    if not value.startswith(prefix):
        raise ValueError("authorization is not SDK-HMAC-SHA256")
    parts: dict[str, str] = {}
    for item in value[len(prefix) :].split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            raise ValueError("malformed authorization part")
        parts[key] = val
    try:
        return parts["Access"], parts["SignedHeaders"].split(";"), parts["Signature"]
    except KeyError as missing:
        raise ValueError(f"authorization lacks {missing.args[0]}") from None
