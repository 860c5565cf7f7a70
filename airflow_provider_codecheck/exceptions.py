"""Exceptions a DAG sees. Core errors (``CodeCheckError`` and subclasses) are re-exported here."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_codecheck.core.errors import (
    AuthenticationError,
    BadRequestError,
    CodeCheckError,
    ConnectionConfigError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    ServiceError,
    TaskRunningError,
    ThrottledError,
    TlsVerificationError,
    TokenExpiredError,
    TransientError,
    TransportError,
)


class CodeCheckScanFailed(AirflowFailException):
    """The scan ended failed (task_status 1) or stopped (3). Fails without retry; ``soft_fail`` skips."""


class CodeCheckQualityGateFailed(AirflowFailException):
    """The scan succeeded but a defect count exceeded the operator's ``quality_gate``."""


class CodeCheckServiceGateFailed(AirflowFailException):
    """The scan succeeded but the quality gate configured on the task in CodeArts failed it (``is_access``
    false); raised only by an operator with ``fail_on_service_gate=True``. Fails without retry."""


class CodeCheckConfigurationError(AirflowFailException, ValueError):
    """A task parameter is invalid (quality gate, poll interval, wait timeout, task id). Fails without retry:
    retrying cannot fix a configuration."""


class CodeCheckWaitAborted(CodeCheckError):
    """The sensor's wait hit a permanent API error (403, rejected credentials, unknown task, invalid connection).

    Deliberately not an ``AirflowException``: it fails the sensor even with ``soft_fail=True``, in poke,
    reschedule and deferred modes alike; ``soft_fail`` skips only a failed or stopped scan and the timeout.
    """


class CodeCheckWaitError(AirflowException):
    """The wait could not reach a verdict: a permanent API error, a timeout, or a malformed event."""


__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CodeCheckConfigurationError",
    "CodeCheckError",
    "CodeCheckQualityGateFailed",
    "CodeCheckScanFailed",
    "CodeCheckServiceGateFailed",
    "CodeCheckWaitAborted",
    "CodeCheckWaitError",
    "ConnectionConfigError",
    "InvalidResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "ServiceError",
    "TaskRunningError",
    "ThrottledError",
    "TlsVerificationError",
    "TokenExpiredError",
    "TransientError",
    "TransportError",
]
