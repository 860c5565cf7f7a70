"""Exception hierarchy and error classification.

Every error carries what a person needs to act on it: the HTTP status, CodeArts ``error_code`` and
``error_msg``, the ``X-Request-Id`` to quote to Huawei support, and how many attempts were made.
Secrets never appear: messages are built only from the service's reply and the request path.
"""

from __future__ import annotations


class CodeCheckError(Exception):
    """Base class of every error this provider raises about CodeArts Check."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.retry_after = retry_after
        self.attempts = 1
        self.operation: str | None = None
        # True when the request may have taken effect although no usable reply came back.
        self.maybe_processed = False

    def __str__(self) -> str:
        parts = [f"{self.operation}: {self.message}" if self.operation else self.message]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.error_code:
            parts.append(f"error_code {self.error_code}")
        if self.error_msg and self.error_msg != self.message:
            parts.append(f"error_msg {self.error_msg!r}")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        if self.attempts > 1:
            parts.append(f"after {self.attempts} attempts")
        return "; ".join(parts)


class ConnectionConfigError(CodeCheckError, ValueError):
    """The Airflow connection is incomplete or invalid; the message names the field."""


class AuthenticationError(CodeCheckError):
    """Credentials were rejected (bad password, AK/SK signature, unknown or expired static token)."""


class TokenExpiredError(AuthenticationError):
    """401 CC.00000003: the IAM token expired or was revoked; IAM-password auth refreshes it once."""


class PermissionDeniedError(CodeCheckError):
    """The credentials are valid but lack permission (403, CC.00050010, CC.00050011)."""


class NotFoundError(CodeCheckError):
    """The task or project does not exist (404, CC.00050013)."""


class BadRequestError(CodeCheckError):
    """The service rejected the request as invalid (CC.00050000, CC.00050019, other 4xx)."""


class InvalidTaskIdError(BadRequestError, ValueError):
    """A task id that is not an id or could escape the URL path; rejected before anything is sent.

    Also a ``ValueError`` for callers that validate input that way; permanent (never retried).
    """


class ServiceError(CodeCheckError):
    """A CodeArts error code that retrying will not fix (e.g. CC.00050005 create task error)."""


class TransientError(CodeCheckError):
    """Worth retrying: 5xx, gateway pages, CC.00000000 / CC.00050012 (network busy).

    A 5xx is ``maybe_processed``: the gateway may answer 502/503/504 after the backend accepted the request.
    """

    retryable = True


class ThrottledError(TransientError):
    """HTTP 429; ``retry_after`` holds the server's Retry-After in seconds when it sent one."""


class TaskRunningError(TransientError):
    """CC.00050015 "task is running": a scan of this task is in progress.

    Retried for idempotent calls; raised at once for ``run`` (a resend would start a second scan once the
    running one ends): the caller attaches to the running scan instead.
    """


class InvalidResponseError(TransientError):
    """The reply could not be understood (malformed JSON, a missing exec_id, an undocumented task_status)."""


class TransportError(TransientError):
    """No usable reply: connection refused or reset, timeout.

    ``maybe_processed`` is True when the request may have reached the service (read timeout, reset after
    sending); non-idempotent calls such as ``run`` are not retried then, to avoid starting a second scan.
    """


class ResponseTooLargeError(CodeCheckError):
    """The reply body exceeded ``core.http.MAX_RESPONSE_BYTES`` (10 MiB); it was not read into memory.

    Permanent: the same request would get the same oversized answer.
    """


class TlsVerificationError(CodeCheckError):
    """The server certificate failed verification; set ``ca_bundle`` (or ``verify``) in the connection."""


# CodeArts and API-gateway error codes whose meaning does not depend on the HTTP status they came with.
_CODE_CLASSES: dict[str, type[CodeCheckError]] = {
    "CC.00000000": TransientError,  # network busy, try later
    "CC.00000003": TokenExpiredError,
    "CC.00050000": BadRequestError,
    # "query task detail error": what the service answers (with HTTP 200) for a task id it does not know.
    "CC.00050002": NotFoundError,
    "CC.00050006": TransientError,  # service inner error
    "CC.00050007": AuthenticationError,
    "CC.00050010": PermissionDeniedError,
    "CC.00050011": PermissionDeniedError,
    "CC.00050012": TransientError,  # retry later
    "CC.00050013": NotFoundError,
    "CC.00050014": TransientError,  # getTaskBasicInfo failed, retry later
    "CC.00050015": TaskRunningError,
    "CC.00050019": BadRequestError,
    # The gateway spells its codes APIG.* or APIGW.* (both appear in Huawei's docs).
    "APIG.0307": TokenExpiredError,  # "The token must be updated"
    "APIGW.0307": TokenExpiredError,
    "APIG.0308": ThrottledError,
    "APIGW.0308": ThrottledError,
}


TOKEN_REJECTED_CODES = frozenset({"CC.00000003", "APIG.0301", "APIGW.0301", "APIG.0307", "APIGW.0307"})
"""401 codes by which the service or its gateway rejects an IAM token (invalid, expired, revoked, to update)."""


def rejects_token(error: CodeCheckError) -> bool:
    """True for a 401 that rejects the X-Auth-Token sent (meaningful only for requests that sent one)."""
    return isinstance(error, TokenExpiredError) or (
        error.status == 401 and error.error_code in TOKEN_REJECTED_CODES
    )


def _class_for(status: int, error_code: str | None) -> type[CodeCheckError]:
    if error_code in _CODE_CLASSES:
        return _CODE_CLASSES[error_code]
    if error_code and error_code.startswith(("APIG.03", "APIGW.03")) and status != 403:
        # 0301 signature, 0303 date, 0101-style unknown AK all land in 03xx/01xx; the 403s of that range
        # (0302 "IAM user is not authorized to access the API") are permission errors, handled below.
        return AuthenticationError
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status == 429:
        return ThrottledError
    if status >= 500:
        return TransientError
    if 400 <= status < 500:
        return BadRequestError
    return ServiceError


def classify(
    status: int,
    error_code: str | None,
    error_msg: str | None,
    request_id: str | None,
    retry_after: float | None = None,
) -> CodeCheckError:
    """Build the exception for an error reply (any status, including CodeArts errors sent with HTTP 200)."""
    cls = _class_for(status, error_code)
    message = error_msg or f"CodeArts Check answered HTTP {status}"
    return cls(
        message,
        status=status,
        error_code=error_code,
        error_msg=error_msg,
        request_id=request_id,
        retry_after=retry_after,
    )
