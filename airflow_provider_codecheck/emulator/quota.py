"""The API gateway's request quota: a token bucket per API (or one for all), off by default.

Huawei's gateway throttles per API and dimension and answers 429 ``APIG.0308`` / ``APIGW.0308`` "The throttling
threshold has been reached: policy user over ratelimit,limit:N,time:1 second" (reference gateway-and-quotas.md).
CodeArts Check's own quota is not published, so the rate is whatever a test sets. Time is the emulator clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

QUOTA_SCOPES = ("api", "all")


class QuotaSpecError(ValueError):
    """An admin quota setting is invalid; answered with HTTP 400."""


@dataclass
class Bucket:
    tokens: float
    updated_at: float


@dataclass(frozen=True)
class Throttle:
    """A refused request: the limit to name in the message and when the next token arrives."""

    limit: float
    wait_s: float
    retry_after_form: str | None


class Quota:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.rate: float | None = None
        self.burst = 1
        self.scope = "api"
        self.retry_after_form: str | None = "seconds"
        self._buckets: dict[str, Bucket] = {}

    def configure(
        self,
        rate: float | None = None,
        burst: int | None = None,
        scope: str = "api",
        retry_after_form: str | None = "seconds",
    ) -> dict[str, Any]:
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0):
            raise QuotaSpecError("rate must be a positive number of requests per second, or null (off)")
        if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
            raise QuotaSpecError("burst must be a positive integer")
        if scope not in QUOTA_SCOPES:
            raise QuotaSpecError(f"scope must be one of {list(QUOTA_SCOPES)}")
        if retry_after_form not in ("seconds", "date", None):
            raise QuotaSpecError('retry_after_form must be "seconds", "date" or null')
        self.rate = None if rate is None else float(rate)
        # Default burst: one second's worth of requests (at least one).
        self.burst = burst if burst is not None else max(1, math.ceil(self.rate or 1))
        self.scope = scope
        self.retry_after_form = retry_after_form
        self._buckets.clear()
        return self.describe()

    def describe(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "burst": self.burst,
            "scope": self.scope,
            "retry_after_form": self.retry_after_form,
        }

    def off(self) -> None:
        self.configure(None)

    def take(self, route: str) -> Throttle | None:
        """Spend a token for this request; a Throttle when none is left."""
        if self.rate is None:
            return None
        now = self.clock()
        key = route if self.scope == "api" else "*"
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated_at) * self.rate)
        bucket.updated_at = now
        if bucket.tokens >= 1 - 1e-9:  # float noise of clock arithmetic must not refuse an earned token
            bucket.tokens = max(0.0, bucket.tokens - 1)
            return None
        return Throttle(self.rate, (1 - bucket.tokens) / self.rate, self.retry_after_form)
