"""The one retry policy both transports obey: what to retry, how long to wait, when to give up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_codecheck.core.errors import CodeCheckError, TaskRunningError


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, Retry-After honoured, capped in attempts and elapsed time."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_elapsed: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_elapsed < 0:
            raise ValueError("retry delays must not be negative")

    def next_delay(
        self,
        error: CodeCheckError,
        attempt: int,
        elapsed: float,
        idempotent: bool,
        rand: Callable[[], float],
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up and raise ``error``."""
        if not error.retryable or attempt >= self.max_attempts:
            return None
        if not idempotent and (error.maybe_processed or isinstance(error, TaskRunningError)):
            # A non-idempotent call (run) is resent only after a definite refusal that changed nothing and
            # will not change meaning: 429, network busy, connect refused. Never after an unknown outcome
            # (timeout, reset after sending, any 5xx: the scan may have started), and never after "task is
            # running" (CC.00050015): a resend would start a second scan once the first one ends; the
            # caller attaches to the running scan instead.
            return None
        backoff = rand() * min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        delay = max(backoff, error.retry_after or 0.0)
        if elapsed + delay > self.max_elapsed:
            return None
        return delay


DEFAULT_RETRY_POLICY = RetryPolicy()
