"""The sans-I/O wait flow shared by the trigger and the worker (core/waiting.py)."""

from __future__ import annotations

from airflow_provider_codecheck.core.errors import ThrottledError, TransientError
from airflow_provider_codecheck.core.models import TaskProgress, TaskStatus
from airflow_provider_codecheck.core.waiting import Pause, Poll, Report, wait_for_scan


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pauses(answers, poll_interval=1.0, deadline=None):
    """Drive the flow with the given poll answers; return the pauses it asked for and its final event."""
    clock = _Clock()
    flow = wait_for_scan("t", poll_interval, deadline, clock=clock)
    pauses: list[float] = []
    answers = list(answers)
    effect = next(flow)
    try:
        while True:
            if isinstance(effect, Poll):
                effect = flow.send(answers.pop(0))
            elif isinstance(effect, Pause):
                pauses.append(effect.seconds)
                clock.now += effect.seconds
                effect = flow.send(None)
            else:
                assert isinstance(effect, Report)
                effect = flow.send(None)
    except StopIteration as stop:
        return pauses, stop.value


def _throttled(retry_after):
    return ThrottledError("throttled", status=429, error_code="APIGW.0308", retry_after=retry_after)


DONE = TaskProgress(status=TaskStatus.SUCCESS, ratio=100, info=None, raw={})


def test_throttled_poll_waits_as_long_as_the_server_asked():
    pauses, event = _pauses([_throttled(7.0), TransientError("busy"), DONE], poll_interval=1.0)
    assert pauses == [7.0, 1.0]  # Retry-After once, then the normal interval again
    assert event["status"] == "success"


def test_retry_after_shorter_than_the_interval_keeps_the_interval():
    pauses, _ = _pauses([_throttled(0.5), DONE], poll_interval=2.0)
    assert pauses == [2.0]


def test_retry_after_is_bounded_by_the_deadline():
    pauses, event = _pauses([_throttled(60.0)], poll_interval=1.0, deadline=1010.0)
    assert pauses == [10.0]
    assert event["status"] == "timeout"
