"""The request budget: one client-side rate limiter per (service endpoint, identity) per process.

Every CodeArts Check call of the process (progress, run, stop, defects; IAM aside) that uses the same
endpoint and identity draws from one ``Budget``, whatever thread or event loop it runs in. Pure: no I/O, the
clock is injected; waiting is the caller's (``flow.admitted`` yields ``Sleep``).

* **Learned without configuration** (botocore's adaptive retry mode): unlimited until the service answers
  429; then a token bucket whose rate is cut to 0.7x the measured send rate (one cut per round of requests
  sent before the cut), and on each success probed back up along a CUBIC curve, at most to twice the measured
  send rate. ``cap`` (connection extra ``max_requests_per_second``) bounds it from the start.
* **Retry-After** pauses the whole budget; the bucket restarts empty after the pause (no burst into it).
* **Fair**: callers get tickets in the order they asked (when their call became due); tokens are granted
  strictly in ticket order, so nobody overtakes the queue just after a refill.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MIN_RATE = 0.5
BETA = 0.7
SCALE = 0.4
SMOOTH = 0.8
METER_BUCKET_S = 0.5
QUIET_S = 60.0
"""A throttled budget counts as recovered once this long passed without a 429."""
MIN_NAP = 0.001
MAX_NAP = 5.0
"""A queued caller sleeps half its estimated wait, at most this long, then asks again: if the rate rises
meanwhile (or others leave), it is not left asleep while its turn has come."""
MAX_PAUSE_S = 60.0
"""A Retry-After pauses the budget at most this long (a call that must wait longer gives up on its own)."""


STATED_SHARE = 0.95
"""Of a limit the gateway states in its 429 message, pace at most at this share (timing jitter, a margin)."""


@dataclass
class Ticket:
    number: int
    granted_at: float | None = None


@dataclass
class _Meter:
    """Measured send rate: requests per half-second bucket, exponentially smoothed (botocore's RateClocker)."""

    rate: float = 0.0
    count: int = 0
    bucket: float = field(default=-math.inf)

    def record(self, now: float) -> None:
        start = math.floor(now / METER_BUCKET_S) * METER_BUCKET_S
        if self.bucket == -math.inf:
            self.bucket = start
        elif start > self.bucket:
            # Close the bucket with its own count; each empty bucket since then counts as a rate of 0.
            self.rate = (self.count / METER_BUCKET_S) * SMOOTH + self.rate * (1 - SMOOTH)
            empty = round((start - self.bucket) / METER_BUCKET_S) - 1
            self.rate *= (1 - SMOOTH) ** min(empty, 50)
            self.count = 0
            self.bucket = start
        self.count += 1

    def estimate(self, now: float) -> float:
        """The smoothed rate; before the first half-second closed, the rate of the requests counted so far."""
        if self.bucket == -math.inf:
            return 0.0
        current = self.count / max(METER_BUCKET_S, now - self.bucket)
        return max(self.rate, current)


class Budget:
    """Thread-safe; every method reads the injected clock once and never blocks beyond its own lock."""

    def __init__(
        self,
        name: str = "budget",
        cap: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        notify: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        self.notify = notify or (lambda level, message: None)
        self._lock = threading.Lock()
        self._meter = _Meter()
        self.cap: float | None = None
        self.rate: float | None = None  # None: unlimited (no throttle seen, no cap)
        self._tokens = 0.0
        self._refilled_at = clock()
        self.paused_until = -math.inf
        self._next = 0  # the next ticket number to hand out
        self._served = 0  # tickets below this were granted (or left the queue)
        self._left: set[int] = set()
        self._last_max = 0.0
        self._cut_at = -math.inf
        self._k = 0.0
        self.throttled = False
        self._last_429 = -math.inf
        self.throttles = 0
        self.ceiling: float | None = None
        """The limit the gateway stated in its 429s (times STATED_SHARE): probing never goes above it."""
        self.set_cap(cap)

    def set_cap(self, cap: float | None) -> None:
        with self._lock:
            self._refill(self.clock())
            self.cap = cap
            if cap is not None:
                if self.rate is None:
                    self._tokens = max(1.0, cap)  # nothing limited it so far: a full bucket
                self.rate = min(self.rate or cap, cap)
            elif self._last_max == 0:
                self.rate = None  # never throttled: the cap was all that limited it

    # --- queue --------------------------------------------------------------------------------------------

    def enter(self) -> Ticket:
        with self._lock:
            ticket = Ticket(self._next)
            self._next += 1
            return ticket

    def acquire(self, ticket: Ticket) -> float:
        """0 when ``ticket`` may be sent now (then it is spent); else the seconds to wait before asking again."""
        with self._lock:
            now = self.clock()
            self._grant(now)
            if ticket.number < self._served:
                ticket.granted_at = now
                self._meter.record(now)
                return 0.0
            ahead = ticket.number - self._served - len([n for n in self._left if n < ticket.number])
            paused = max(0.0, self.paused_until - now)
            turn = 0.0
            if self.rate is not None:
                tokens = 0.0 if paused > 0 else self._tokens
                turn = max(0.0, ahead + 1 - tokens) / self.rate
            return max(paused + (turn if turn < 0.05 else min(turn / 2, MAX_NAP)), MIN_NAP)

    def leave(self, ticket: Ticket) -> None:
        """A caller gave up waiting (cancelled): its turn is skipped, no token spent."""
        with self._lock:
            if ticket.number >= self._served:
                self._left.add(ticket.number)
                self._grant(self.clock())

    def _refill(self, now: float) -> None:
        start = max(self._refilled_at, self.paused_until)
        if self.rate is not None and now > start:
            self._tokens = min(max(1.0, self.rate), self._tokens + (now - start) * self.rate)
        self._refilled_at = max(now, self._refilled_at)

    def _grant(self, now: float) -> None:
        if now < self.paused_until:
            return
        self._refill(now)
        while self._served < self._next:
            if self._served in self._left:
                self._left.discard(self._served)
            elif self.rate is None:
                pass
            elif self._tokens >= 1.0 - 1e-9:
                self._tokens -= 1.0
            else:
                return
            self._served += 1

    # --- learning -----------------------------------------------------------------------------------------

    def observe(
        self, ticket: Ticket, throttled: bool, retry_after: float | None = None, stated: float | None = None
    ) -> None:
        """Learn from the answer to a request sent with ``ticket``: a 429 (with its Retry-After and the limit
        its message states, if any) or any other."""
        with self._lock:
            now = self.clock()
            if throttled:
                if stated is not None:
                    self.ceiling = max(MIN_RATE, stated * STATED_SHARE)
                self._throttle(ticket, now, retry_after)
            elif self.rate is not None and self._last_max > 0:
                self._probe(now)
            if self.throttled and now - self._last_429 >= QUIET_S:
                self.throttled = False
                self.notify(
                    "info", f"{self.name}: no 429 for {QUIET_S:g} s; learned rate {self._rate_text()}"
                )

    def _throttle(self, ticket: Ticket, now: float, retry_after: float | None) -> None:
        self.throttles += 1
        self._last_429 = now
        if retry_after is not None and retry_after > 0:
            retry_after = min(retry_after, MAX_PAUSE_S)
            if now + retry_after > self.paused_until:
                self._refill(now)
                self._tokens = 0.0
                self.paused_until = now + retry_after
        sent = ticket.granted_at if ticket.granted_at is not None else now
        if sent >= self._cut_at:  # one cut per round: answers to requests sent before the last cut add none
            self._refill(now)
            measured = self._meter.estimate(now)
            base = measured if self.rate is None else min(measured, self.rate)
            if self.ceiling is not None and base > self.ceiling:
                base = self.ceiling  # we alone went over the limit the gateway names: pace just under it
                cut = base
            else:
                cut = base * BETA  # over a limit we do not know, or shared with other clients: back off
            self._last_max = max(base, MIN_RATE)
            # CUBIC's curve starts at the cut rate: K is the time it takes to climb back to the last maximum.
            self._k = 0.0 if cut >= base else (self._last_max * (1 - BETA) / SCALE) ** (1 / 3)
            self._cut_at = now
            self._set_rate(cut)
        if not self.throttled:
            self.throttled = True
            paused = f", paused {retry_after:g} s (Retry-After)" if retry_after else ""
            if self.ceiling is not None:
                paused += f", its message names a limit of {self.ceiling / STATED_SHARE:g} requests/s"
            self.notify(
                "warning",
                f"{self.name}: the service is throttling (HTTP 429){paused}; every call of this endpoint and "
                f"identity is now paced at {self._rate_text()}, learned from the 429s",
            )

    def _probe(self, now: float) -> None:
        cubic = SCALE * (now - self._cut_at - self._k) ** 3 + self._last_max
        self._set_rate(min(cubic, 2 * max(self._meter.estimate(now), MIN_RATE)))

    def _set_rate(self, rate: float) -> None:
        rate = max(rate, MIN_RATE) if self.ceiling is None else max(min(rate, self.ceiling), MIN_RATE)
        self.rate = rate if self.cap is None else min(rate, self.cap)

    def _rate_text(self) -> str:
        return "no limit" if self.rate is None else f"{self.rate:.1f} requests/s"

    def __repr__(self) -> str:
        return f"<Budget {self.name} rate={self._rate_text()} throttled={self.throttled}>"
