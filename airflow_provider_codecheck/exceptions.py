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


class CodeCheckWaitError(AirflowException):
    """The wait could not reach a verdict: a permanent API error, a timeout, or a malformed event."""


__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CodeCheckError",
    "CodeCheckQualityGateFailed",
    "CodeCheckScanFailed",
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
