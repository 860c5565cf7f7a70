"""Reading a reply: JSON decoding, CodeArts errors (including those sent with HTTP 200), classification."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from airflow_provider_codecheck.core.errors import (
    CodeCheckError,
    InvalidResponseError,
    TransientError,
    classify,
)
from airflow_provider_codecheck.core.http import HttpResponse

_SNIPPET = 200
_TAG_RE = re.compile(r"<[^>]+>")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait per a Retry-After header (RFC 7231 7.1.3): delta-seconds or an HTTP-date.

    An HTTP-date is measured from ``now`` (the flow Context's clock) and never negative: a date in the past
    means "retry now" (0). Anything unparseable is ignored (None); the backoff still applies.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(text)  # IMF-fixdate, and the obsolete RFC 850 and asctime forms
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # HTTP-dates are always GMT
    return max(0.0, (moment - now).total_seconds())


def _retry_after(headers: dict[str, str], now: datetime | None) -> float | None:
    return parse_retry_after(headers.get("retry-after"), now or datetime.now(UTC))


_MAX_ERROR_DEPTH = 8
"""How deep nested objects are searched for an error; replies nest errors one or two levels at most."""

_ERROR_KEYS = (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message"))
_SUCCESS_ERROR_KEYS = _ERROR_KEYS[:2]
"""On a 2xx only these, at the top level, are an error: the documented CC codes sent with HTTP 200."""


def _code_at(body: dict[str, Any], keys: tuple[tuple[str, str], ...]) -> tuple[str | None, str | None]:
    for code_key, msg_key in keys:
        code = body.get(code_key)
        if code not in (None, "", 0, "0"):
            msg = body.get(msg_key)
            return str(code), None if msg is None else str(msg)
    return None, None


def _find_error(body: Any, depth: int = 0) -> tuple[str | None, str | None]:
    """Find (code, message) in an error reply the way the SDK does (status >= 400 only):
    error_code/error_msg, errorCode/errorMsg, code/message, then nested objects."""
    if not isinstance(body, dict) or depth > _MAX_ERROR_DEPTH:
        return None, None
    found = _code_at(body, _ERROR_KEYS)
    if found[0]:
        return found
    for value in body.values():
        if isinstance(value, dict):
            found = _find_error(value, depth + 1)
            if found[0]:
                return found
    return None, None


def _find_success_error(body: Any) -> tuple[str | None, str | None]:
    """A CodeArts error sent with a 2xx (e.g. 200 CC.00050015): a top-level error_code/errorCode only.

    A nested object with ``code``/``message`` keys inside a valid answer is data, not an error (the SDK
    parses errors only on status >= 400; the CC codes documented with 200 are top-level ``error_code``).
    """
    return _code_at(body, _SUCCESS_ERROR_KEYS) if isinstance(body, dict) else (None, None)


def _text_snippet(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    text = " ".join(_TAG_RE.sub(" ", text).split())
    return text[:_SNIPPET] + ("..." if len(text) > _SNIPPET else "")


def decode(response: HttpResponse, now: datetime | None = None) -> Any:
    """Return the decoded JSON body of a successful reply, or raise the classified CodeCheckError.

    ``now``: the moment an HTTP-date Retry-After is measured from (default: the wall clock).
    """
    request_id = response.request_id
    try:
        body: Any = json.loads(response.body) if response.body.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested deeper than Python can
        body = None
    if body is None:
        content_type = response.headers.get("content-type", "unknown content type")
        snippet = _text_snippet(response.body)
        if response.status >= 400:
            # A gateway's HTML page: the status decides, the page text helps the reader.
            error: CodeCheckError = classify(
                response.status, None, f"{content_type} body: {snippet}", request_id
            )
            if response.status in (502, 503, 504):
                error = TransientError(error.message, status=response.status, request_id=request_id)
            raise _mark_5xx(error, response.status)
        raise InvalidResponseError(
            f"reply is not valid JSON ({content_type}): {snippet!r}",
            status=response.status,
            request_id=request_id,
        )
    code, msg = _find_error(body) if response.status >= 400 else _find_success_error(body)
    if response.status >= 400 or code:
        error = classify(response.status, code, msg, request_id, _retry_after(response.headers, now))
        raise _mark_5xx(error, response.status)
    return body


def _mark_5xx(error: CodeCheckError, status: int) -> CodeCheckError:
    # A 5xx leaves the effect unknown: a gateway's 502/503/504 may come after the backend accepted the
    # request (a 504 "backend timeout" on run did start a scan), and a 500 may come after a partial effect.
    # 429 and the 4xx are definite refusals; connect-refused never reached anyone.
    if status >= 500:
        error.maybe_processed = True
    return error


def require_dict(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidResponseError(f"{what} reply is a {type(body).__name__}, expected a JSON object")
    return body
