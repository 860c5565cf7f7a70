"""When to poll a scan next: its end estimated from its ``ratio`` over time. Pure: times are passed in.

The estimator (docs/polling.md):

* While the scan is checking, every ratio seen (``r`` at ``t``, taken as ``r + 0.5``: the ratio is a whole
  percent) feeds a least-squares line ``r = a + b t`` (running sums, O(1) memory); once the ratio has moved,
  the estimated end is where the line reaches 100%. A ratio that goes back down is another run: start over.
* No estimate yet (one ratio seen, or not checking): pause ``P`` (``poll_interval``), as before.
* Far from the estimated end: pause half the time left (each poll halves the distance, the estimate sharpens
  as the span grows); within ``2P`` of it: pause until just after it.
* Past the estimated end with the ratio unchanged (a stalled ratio, e.g. 99% for minutes): back off to half the
  time since the estimated end, so a stall costs few polls yet its end is seen within the maximum interval.
* Always ``P <= pause <= max_interval`` (the wait flow then bounds it by the deadline and Retry-After).
"""

from __future__ import annotations

import math

MAX_INTERVAL_S = 300.0


def default_max_interval(interval: float) -> float:
    """Ten poll intervals, at most 5 minutes (never below the interval): how late a stalled scan's end is seen."""
    return max(interval, min(10 * interval, MAX_INTERVAL_S))


END_MARGIN_S = 0.2
"""Aim this long after the estimated end (the ratio is coarse; a poll just before the end is wasted)."""


class Pacer:
    __slots__ = (
        "_logged_end",
        "_n",
        "_ratio",
        "_sr",
        "_st",
        "_str",
        "_stt",
        "_t0",
        "end",
        "interval",
        "max_interval",
    )

    def __init__(self, interval: float, max_interval: float) -> None:
        self.interval = interval
        self.max_interval = max(interval, max_interval)
        self.end: float | None = None
        """The estimated end (same clock as the times given), None while unknown."""
        self._logged_end: float | None = None
        self._ratio: int | None = None
        self._t0 = 0.0
        self._n = 0
        self._st = self._sr = self._stt = self._str = 0.0

    def observe(self, now: float, checking: bool, ratio: int | None) -> None:
        """A poll answered at ``now``: the scan is (not) checking, at ``ratio`` percent (None: unknown)."""
        if not checking or ratio is None:
            return
        if self._ratio is None or ratio < self._ratio:  # the first ratio, or a new run: start over
            self._t0, self._n, self._st, self._sr, self._stt, self._str = now, 0, 0.0, 0.0, 0.0, 0.0
            self._ratio, self.end = ratio, None
        t, r = now - self._t0, ratio + 0.5  # a whole percent: the true progress lies in [ratio, ratio + 1)
        self._n += 1
        self._st += t
        self._sr += r
        self._stt += t * t
        self._str += t * r
        moved = ratio != self._ratio
        self._ratio = ratio
        if moved or self.end is not None:
            spread = self._n * self._stt - self._st**2
            slope = (self._n * self._str - self._st * self._sr) / spread if spread > 0 else 0.0
            if slope > 0:
                intercept = (self._sr - slope * self._st) / self._n
                self.end = self._t0 + (100 - intercept) / slope

    def pause(self, now: float) -> float:
        """Seconds until the next poll, in ``[interval, max_interval]``."""
        if self.end is None:
            wanted = self.interval
        elif now < self.end - 2 * self.interval:
            wanted = (self.end - now) / 2
        elif now < self.end:
            wanted = self.end - now + END_MARGIN_S
        else:
            wanted = (now - self.end) / 2  # overdue: the ratio stalls, or the estimate was early
        return min(self.max_interval, max(self.interval, wanted))

    def news(self, now: float) -> str | None:
        """A line to log when the estimated end first appears or moves materially (by > max(P, 25% left))."""
        end = self.end
        if end is None or end < now:
            return None
        left = end - now
        if self._logged_end is not None and abs(end - self._logged_end) <= max(self.interval, 0.25 * left):
            return None
        self._logged_end = end
        return (
            f"estimated end in {_duration(left)} (ratio {self._ratio}%); polls adapt between "
            f"{self.interval:g} s near the end and {self.max_interval:g} s"
        )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{math.ceil(seconds)} s"
    return f"{seconds / 60:.0f} min"
