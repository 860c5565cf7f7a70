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


def test_throttled_poke_is_not_repeated_before_retry_after(default_conn_emulator):
    # Sensor poke/reschedule modes: the next poke comes no sooner than the server's Retry-After.
    import time

    from airflow_provider_codecheck.core.retry import RetryPolicy
    from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
    from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor

    default_conn_emulator.add_task(
        task_id="throttled",
        duration_s=30,
        final_status=2,
        running=True,
        faults=[{"kind": "throttle_429", "count": 2, "retry_after": 40, "routes": ["progress"]}],
    )
    sensor = CodeCheckTaskSensor(task_id="s", codecheck_task_id="throttled", poke_interval=1, mode="poke")
    # One attempt per poke, so the 429 reaches the sensor at once (a Retry-After beyond the client's retry
    # budget is given up on at once anyway).
    sensor.hook = CodeCheckHook(retry_policy=RetryPolicy(max_attempts=1))
    assert sensor.poke({}) is False
    assert sensor._get_next_poke_interval(time.monotonic(), lambda: 0.0, 1) == 40.0
    assert sensor._get_next_poke_interval(time.monotonic(), lambda: 0.0, 2) == 1.0  # back to poke_interval
