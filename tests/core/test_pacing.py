"""Adaptive polling (core/pacing.py) through the wait flow, on a fake clock with simulated scans."""

from __future__ import annotations

import math
import random

import pytest

from airflow_provider_codecheck.core.models import TaskProgress, TaskStatus
from airflow_provider_codecheck.core.pacing import Pacer, default_max_interval
from airflow_provider_codecheck.core.waiting import Pause, Poll, Report, wait_for_scan


class Scan:
    """A scan as the emulator plays it: ratio 0..99% over ``duration``, held at 99% for ``stall``, then done."""

    def __init__(self, started: float, duration: float, stall: float = 0.0) -> None:
        self.started, self.duration, self.stall = started, duration, stall
        self.end = started + duration + stall

    def at(self, now: float) -> TaskProgress:
        if now >= self.end:
            return TaskProgress(status=TaskStatus.SUCCESS, ratio=100, info="success", raw={})
        ratio = min(99, int(100 * (now - self.started) / self.duration))
        return TaskProgress(status=TaskStatus.CHECKING, ratio=ratio, info="running", raw={})


def run(scan: Scan, start: float, interval: float, max_interval: float | None = None):
    now = [start]
    flow = wait_for_scan("t", interval, None, clock=lambda: now[0], max_poll_interval=max_interval)
    polls, pauses, reports = 0, [], []
    answer = None
    while True:
        try:
            effect = flow.send(answer)
        except StopIteration as done:
            return done.value, polls, pauses, reports, now[0]
        answer = None
        if isinstance(effect, Poll):
            polls += 1
            answer = scan.at(now[0])
        elif isinstance(effect, Pause):
            pauses.append(effect.seconds)
            now[0] += effect.seconds
        else:
            assert isinstance(effect, Report)
            reports.append(effect.message)


@pytest.mark.parametrize("seed", range(5))
def test_fewer_polls_than_half_the_fixed_interval_and_the_end_seen_within_one_interval(seed: int) -> None:
    rng = random.Random(seed)
    interval = 2.0
    total = fixed = 0
    for _ in range(100):
        duration = rng.uniform(20, 60)
        start = rng.uniform(0, interval)  # the wait starts while the scan runs
        scan = Scan(0.0, duration)
        event, polls, pauses, _, ended = run(scan, start, interval)
        assert event["status"] == "success"
        total += polls
        fixed += math.ceil((scan.end - start) / interval) + 1
        assert ended - scan.end <= interval
        assert all(interval <= p <= default_max_interval(interval) for p in pauses)
    assert total <= 0.5 * fixed


def test_a_stalled_ratio_is_polled_rarely_and_its_end_seen_within_the_maximum_interval() -> None:
    scan = Scan(0.0, 40.0, stall=600.0)
    event, polls, pauses, _, ended = run(scan, 0.0, 2.0, max_interval=20.0)
    assert event["status"] == "success"
    assert ended - scan.end <= 20.0
    assert max(pauses) == 20.0
    assert polls < 60  # a fixed 2 s interval would poll about 320 times


def test_the_estimated_end_is_reported_once_unless_it_moves_materially() -> None:
    _, _, _, reports, _ = run(Scan(0.0, 60.0), 0.0, 2.0)
    estimates = [r for r in reports if "estimated end" in r]
    assert 1 <= len(estimates) <= 2
    assert "estimated end in" in estimates[0]


def test_without_a_moving_ratio_the_interval_is_kept() -> None:
    pacer = Pacer(5.0, 50.0)
    for now in (0.0, 5.0, 10.0):
        pacer.observe(now, checking=True, ratio=3)
        assert pacer.pause(now) == 5.0
    pacer.observe(15.0, checking=False, ratio=None)
    assert pacer.pause(15.0) == 5.0


def test_a_new_run_forgets_the_old_estimate() -> None:
    pacer = Pacer(1.0, 30.0)
    pacer.observe(0.0, True, 10)
    pacer.observe(10.0, True, 30)
    assert pacer.end is not None
    pacer.observe(20.0, True, 2)  # the ratio went back: another run
    assert pacer.end is None


def test_default_maximum_interval() -> None:
    assert default_max_interval(2.0) == 20.0
    assert default_max_interval(60.0) == 300.0
    assert default_max_interval(600.0) == 600.0
