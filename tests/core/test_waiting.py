"""ScanWait (core/waiting.py): one wait state behind the trigger, the hook's blocking wait and the sensor's poke.

The pure tests drive it on a fake clock; the last ones run the three real drivers against the emulator over
sockets and compare what they log.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from airflow_provider_codecheck.core.driving import run_flow
from airflow_provider_codecheck.core.errors import (
    PermissionDeniedError,
    ThrottledError,
    TransientError,
    TransportError,
)
from airflow_provider_codecheck.core.models import TaskProgress, TaskStatus
from airflow_provider_codecheck.core.waiting import (
    Pause,
    Poll,
    Report,
    ScanWait,
    validate_event,
    wait_for_scan,
)

START = 1000.0


def progress(status: TaskStatus, ratio: int | None = None, info: str | None = None) -> TaskProgress:
    return TaskProgress(status=status, ratio=ratio, info=info, raw={})


CHECKING = TaskStatus.CHECKING
SUCCESS = TaskStatus.SUCCESS


def run_direct(answers: list[Any], **kwargs: Any) -> tuple[dict[str, Any], list[Report], list[float]]:
    """The trigger's and the hook's loop, on a fake clock: (event, reports, pauses)."""
    now = START
    wait = ScanWait("t1", **kwargs)
    answers = list(answers)
    reports: list[Report] = []
    pauses: list[float] = []
    while (event := wait.expired(now)) is None:
        event = wait.observe(answers.pop(0), now)
        reports += wait.take_reports()
        if event is not None:
            break
        pauses.append(wait.next_pause(now))
        now += pauses[-1]
    return event, reports, pauses


def run_effects(answers: list[Any], **kwargs: Any) -> tuple[dict[str, Any], list[Report], list[float]]:
    """The same wait through the generator form (``wait_for_scan``)."""
    clock = [START]
    options = dict(kwargs)
    flow = wait_for_scan(
        "t1",
        options.pop("poll_interval"),
        options.pop("deadline", None),
        clock=lambda: clock[0],
        **options,
    )
    answers = list(answers)
    reports: list[Report] = []
    pauses: list[float] = []

    def answer(effect: Any) -> Any:
        if isinstance(effect, Poll):
            return answers.pop(0)
        if isinstance(effect, Pause):
            pauses.append(effect.seconds)
            clock[0] += effect.seconds
        else:
            reports.append(effect)
        return None

    return run_flow(flow, answer), reports, pauses


def run_pokes(answers: list[Any], **kwargs: Any) -> tuple[dict[str, Any] | None, list[Report]]:
    """The sensor's poke: a fresh ScanWait per answer (nothing carried from one poke to the next)."""
    reports: list[Report] = []
    for answer in answers:
        wait = ScanWait("t1", **kwargs)
        event = wait.observe(answer, START)
        reports += wait.take_reports()
        if event is not None:
            return event, reports
    return None, reports


SCENARIO = [
    TransientError("busy", status=400, error_code="CC.00050024"),
    progress(CHECKING, 10, "running"),
    ThrottledError("throttled", status=429, error_code="APIGW.0308", retry_after=7.0),
    progress(CHECKING, 40, "running"),
    progress(SUCCESS, 100, "success"),
]


def test_direct_and_effect_drivers_give_the_same_event_reports_and_pauses() -> None:
    direct = run_direct(SCENARIO, poll_interval=2.0)
    effects = run_effects(SCENARIO, poll_interval=2.0)
    assert direct == effects
    event, reports, pauses = direct
    assert (event["status"], event["ratio"]) == ("success", 100)
    validate_event(event)
    assert pauses[2] == 7.0  # after the 429: the server's Retry-After, not the 2 s interval
    assert [(r.level, r.message) for r in reports[:2]] == [
        ("warning", "Transient error, still waiting: busy; HTTP 400; error_code CC.00050024"),
        ("info", "CodeArts task t1: checking (task_status=0, ratio=10%, info='running')"),
    ]


def test_poke_sees_the_same_verdict_and_lines_as_a_long_wait() -> None:
    event, reports, _ = run_direct(SCENARIO, poll_interval=2.0)
    poked, poke_reports = run_pokes(SCENARIO, poll_interval=2.0)
    assert poked == event
    # The long wait also logs its estimated end (pacing needs two ratios); otherwise the same lines.
    assert poke_reports == [r for r in reports if "estimated end" not in r.message]


def test_a_fresh_wait_logs_every_poke_a_long_wait_only_changes() -> None:
    same = [progress(CHECKING, 10, "running")] * 3
    _, reports = run_pokes(same, poll_interval=1.0)
    assert len(reports) == 3
    _, reports, _ = run_direct([*same, progress(SUCCESS, 100)], poll_interval=1.0)
    assert [r.message.split(": ", 1)[1].split(" ")[0] for r in reports] == ["checking", "success"]


def test_permanent_error_ends_the_wait_with_its_codes() -> None:
    denied = PermissionDeniedError("no permission", status=403, error_code="CC.00050010", request_id="rid-1")
    event, reports, _ = run_direct([progress(CHECKING, 5), denied], poll_interval=1.0)
    assert event["status"] == "error"
    assert (event["error_code"], event["request_id"]) == ("CC.00050010", "rid-1")
    assert event["message"].startswith("Polling stopped: no permission")
    assert [r.level for r in reports] == ["info"]  # the ending error is in the event, not logged twice
    validate_event(event)


def test_expired_only_at_the_deadline_and_pauses_never_pass_it() -> None:
    wait = ScanWait("t1", 4.0, deadline=START + 10, exec_id="e1")
    assert wait.expired(START + 9.9) is None
    assert wait.time_left(START + 9) == 1.0
    assert wait.observe(progress(CHECKING, 1), START + 9) is None
    assert wait.next_pause(START + 9) == 1.0
    event = wait.expired(START + 10)
    assert event is not None
    assert (event["status"], event["exec_id"]) == ("timeout", "e1")
    validate_event(event)
    assert ScanWait("t1", 4.0).expired(1e12) is None
    assert ScanWait("t1", 4.0).time_left(START) is None


def test_retry_after_is_used_once() -> None:
    wait = ScanWait("t1", 1.0)
    assert wait.observe(ThrottledError("slow down", retry_after=30.0), START) is None
    assert wait.retry_after == 30.0
    assert wait.next_pause(START) == 30.0
    assert wait.retry_after == 0.0
    assert wait.next_pause(START) == 1.0


def test_stale_terminal_status_is_ignored_until_checking_or_the_window_passes() -> None:
    wait = ScanWait("t1", 1.0, stale_until=START + 5)
    assert wait.observe(progress(SUCCESS, 100), START) is None  # the previous run's verdict
    assert wait.observe(progress(SUCCESS, 100), START + 5) is not None  # window passed: trusted
    wait = ScanWait("t1", 1.0, stale_until=START + 5)
    assert wait.observe(progress(CHECKING, 0), START) is None
    ended = wait.observe(progress(TaskStatus.FAILED), START + 1)  # this run was seen checking
    assert ended is not None
    assert ended["status"] == "failed"


def test_observe_rejects_a_driver_bug() -> None:
    with pytest.raises(TypeError):
        ScanWait("t1", 1.0).observe({"task_status": 2}, START)  # type: ignore[arg-type]


def test_flush_logs_at_each_level_and_empties() -> None:
    log = Recorder()
    wait = ScanWait("t1", 1.0)
    wait.observe(TransportError("reset"), START)
    wait.observe(progress(CHECKING, 3), START)
    wait.flush(log)
    wait.flush(log)
    assert log.lines == [
        ("warning", "Transient error, still waiting: reset"),
        ("info", "CodeArts task t1: checking (task_status=0, ratio=3%, info=None)"),
    ]


# --- the three real drivers, over sockets, against the emulator ---------------------------------------


class Recorder:
    """A logger that keeps (level, message) pairs; set as a driver's ``_log`` (Airflow's LoggingMixin)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _record(self, level: str, msg: str, *args: Any, **kwargs: Any) -> None:
        self.lines.append((level, msg % args if args else msg))

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._record("debug", msg, *args)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._record("info", msg, *args)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._record("warning", msg, *args)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._record("error", msg, *args)

    def wait_lines(self) -> list[tuple[str, str]]:
        # Each reply has its own request id: the rest of the line must match.
        return [(level, re.sub(r"request id \S+", "request id <id>", text)) for level, text in self.lines]


class _TaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


TASK = "same-lines"


@pytest.fixture
def connection(codecheck_emulator_clean: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow_provider_codecheck.emulator import defaults

    base_url = codecheck_emulator_clean.base_url
    extra = {"auth_type": "password", "domain_name": defaults.IAM_DOMAIN, "iam_endpoint": base_url}
    conn = {
        "conn_type": "huaweicloud_codecheck",
        "host": base_url,
        "login": defaults.IAM_USER,
        "password": defaults.IAM_PASSWORD,
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_CODECHECK_DEFAULT", json.dumps(conn))
    return codecheck_emulator_clean


def _one_attempt_hook() -> Any:
    from airflow_provider_codecheck.core.retry import RetryPolicy
    from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook

    # One attempt per poll: each fault reaches the wait (the client's own retries would hide it).
    return CodeCheckHook(retry_policy=RetryPolicy(max_attempts=1))


async def _trigger_lines(emulator: Any, faults: list[dict[str, Any]]) -> tuple[dict[str, Any], Recorder]:
    from airflow_provider_codecheck.transport.aio import AsyncClient
    from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger

    emulator.add_task(task_id=TASK, initial_status=1, duration_s=30, faults=faults)
    hook = _one_attempt_hook()
    trigger = CodeCheckTaskTrigger(codecheck_task_id=TASK, poll_interval=0.01)
    trigger._log = log = Recorder()
    async with AsyncClient(hook.get_settings(), hook.retry_policy) as client:
        return await trigger._wait(client), log


def _hook_lines(emulator: Any, faults: list[dict[str, Any]]) -> tuple[dict[str, Any], Recorder]:
    emulator.add_task(task_id=TASK, initial_status=1, duration_s=30, faults=faults)
    hook = _one_attempt_hook()
    hook._log = log = Recorder()
    return hook.wait_for_scan(TASK, 0.01, timeout=30), log


def _poke_lines(emulator: Any, faults: list[dict[str, Any]]) -> tuple[BaseException, Recorder]:
    from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor

    emulator.add_task(task_id=TASK, initial_status=1, duration_s=30, faults=faults)
    sensor = CodeCheckTaskSensor(task_id="s", codecheck_task_id=TASK, poke_interval=0.01, mode="poke")
    sensor.hook = _one_attempt_hook()
    # Airflow 3 operators keep their logger in _cached_logger, Airflow 2 (and hooks, triggers) in _log.
    sensor._log = sensor._cached_logger = log = Recorder()
    for _ in range(5):
        try:
            assert sensor.poke({"ti": _TaskInstance()}) is False
        except Exception as ended:  # a failed scan (CodeCheckScanFailed) or a permanent error
            return ended, log
    raise AssertionError("the poke never ended")


async def test_trigger_hook_and_poke_log_the_same_lines(connection: Any) -> None:
    faults = [{"kind": "http_503", "count": 1, "routes": ["progress"]}]
    event, trigger_log = await _trigger_lines(connection, faults)
    hook_event, hook_log = _hook_lines(connection, faults)
    ended, poke_log = _poke_lines(connection, faults)

    assert event["status"] == hook_event["status"] == "failed"
    assert str(ended) == event["message"] == hook_event["message"]
    lines = trigger_log.wait_lines()
    assert [level for level, _ in lines] == ["warning", "info"]
    assert lines[0][1].startswith("Transient error, still waiting: get_task_progress GET ")
    assert lines[1][1] == f"CodeArts task {TASK}: failed (task_status=1, ratio=-, info=None)"
    assert hook_log.wait_lines() == lines
    assert poke_log.wait_lines() == lines


async def test_a_permanent_error_ends_every_driver_with_the_same_message(connection: Any) -> None:
    faults = [{"kind": "forbidden_403", "count": 1, "routes": ["progress"]}]
    event, trigger_log = await _trigger_lines(connection, faults)
    hook_event, hook_log = _hook_lines(connection, faults)
    ended, poke_log = _poke_lines(connection, faults)

    from airflow_provider_codecheck.exceptions import CodeCheckWaitAborted

    assert isinstance(ended, CodeCheckWaitAborted)
    assert event["status"] == hook_event["status"] == "error"
    messages = {
        re.sub(r"request id \S+", "", text) for text in (event["message"], hook_event["message"], str(ended))
    }
    assert len(messages) == 1
    assert messages.pop().startswith("Polling stopped: ")
    assert trigger_log.lines == hook_log.lines == poke_log.lines == []
