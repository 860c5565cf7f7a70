"""Fault matrix through the real trigger: many concurrent ``CodeCheckTaskTrigger.run()`` in one event loop,
against the emulator over sockets, with the default retry policy.

Every wait must end with the scan's true verdict (final statuses 1, 2 and 3 are mixed), with exactly one event,
within a global timeout, and within a request budget (see ``reliability_helpers.K_INDEPENDENT``). Permanent
errors end the wait after a single request with the error code and request id in the event.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import reliability_helpers as rh

from airflow_provider_codecheck import testing
from airflow_provider_codecheck.core.errors import TaskRunningError
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook

WAITS = 50
FAST_WAITS = 20
# The fast subset mixes five kinds in one plan; each fires with q so that 1 - (1 - q) ** 5 = 0.3.
MIXED_KINDS = ("http_503", "reset", "token_expired", "malformed_json", "throttle_429")
MIXED_Q = 1 - (1 - rh.FAULT_P) ** (1 / len(MIXED_KINDS))


async def _transient_scenario(
    emulator, reliability_conn, row: str, kinds: tuple[str, ...], q: float, waits: int
):
    reliability_conn(**rh.timeout_extra(kinds))
    planned = rh.add_tasks(emulator, row.replace("/", "-"), waits, rh.plan(kinds, q))
    triggers = [rh.make_trigger(task.task_id) for task in planned]
    started = time.monotonic()
    with rh.revocations(emulator, kinds) as revoker:
        events = await rh.run_triggers(triggers)
    elapsed = time.monotonic() - started

    assert rh.check_final_events(planned, events) == []
    stats = emulator.stats()
    requests = rh.progress_requests(stats)
    ideal = rh.ideal_polls(planned)
    k = max(rh.k_for(kind) for kind in kinds)
    share = rh.faulted_share(stats)
    rh.check_revocations(stats, revoker)
    if revoker is None:  # revocations add the 401s of the revoked token to the total
        assert 0.2 <= share <= 0.4, f"faulted share {share:.2f} is not about {rh.FAULT_P}"
    assert requests <= k * ideal, f"{requests} progress requests for {ideal:.0f} ideal polls (k={k})"
    assert stats["runs"] == {}  # a trigger never starts a scan
    rh.record(
        row,
        waits=waits,
        faulted_share=round(share, 3),
        correct=f"{waits - len(rh.check_final_events(planned, events))}/{waits}",
        requests=requests,
        ideal=round(ideal),
        ratio=round(requests / ideal, 2),
        k=k,
        iam_tokens=stats["iam_tokens_issued"],
        revocations=revoker.events if revoker else 0,
        rejected_401=stats["requests"].get("progress 401", 0),
        faults=stats["faults_injected"],
        seconds=round(elapsed, 1),
    )


async def test_trigger_waits_survive_mixed_faults(emulator, reliability_conn):
    await _transient_scenario(emulator, reliability_conn, "trigger/mixed", MIXED_KINDS, MIXED_Q, FAST_WAITS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", rh.TRANSIENT_KINDS)
async def test_trigger_fault_matrix(emulator, reliability_conn, kind):
    await _transient_scenario(emulator, reliability_conn, f"trigger/{kind}", (kind,), rh.FAULT_P, WAITS)


@pytest.mark.parametrize(("kind", "error_code"), rh.PERMANENT_KINDS.items())
async def test_trigger_permanent_error_ends_the_wait_after_one_attempt(
    emulator, reliability_conn, kind, error_code
):
    reliability_conn()
    planned = rh.add_tasks(emulator, f"perm-{kind}", WAITS, [rh.fault_spec(kind, 1.0)])
    events = await rh.run_triggers([rh.make_trigger(task.task_id) for task in planned])

    for task, got in zip(planned, events, strict=True):
        assert len(got) == 1, task
        event = got[0]
        assert event["status"] == "error", event
        assert event["error_code"] == error_code
        assert re.fullmatch(r"[0-9a-f]{32}", event["request_id"] or ""), event
        assert error_code in event["message"]
        assert event["request_id"] in event["message"]
        assert "after" not in event["message"]  # "after N attempts" appears only when retried
    stats = emulator.stats()
    # One progress request per wait (each needs at least one to learn its error): no retry, no second poll.
    assert rh.progress_requests(stats) == WAITS
    assert stats["faults_injected"] == {kind: WAITS}
    rh.record(f"trigger/{kind}", waits=WAITS, attempts_per_wait=rh.progress_requests(stats) / WAITS)


def test_run_refused_as_running_is_never_resent(emulator, reliability_conn):
    """A run answered CC.00050015 (HTTP 200 "task is running") is not retried (issue 11 B3/B5).

    Retrying would only start a second scan once the running one ends; the caller attaches instead. One POST
    per task, and the running scans are left alone.
    """
    reliability_conn()
    planned = rh.add_tasks(emulator, "run200", WAITS, min_duration=60.0, running=True)
    before = {task.task_id: emulator.get_task(task.task_id)["last_exec_id"] for task in planned}

    def run(task_id: str) -> BaseException | None:
        try:
            CodeCheckHook(rh.CONN_ID).run_task(task_id)
        except TaskRunningError as error:
            return error
        return None

    with ThreadPoolExecutor(10) as pool:
        errors = list(pool.map(run, [task.task_id for task in planned], timeout=rh.GLOBAL_TIMEOUT_S))

    assert all(isinstance(error, TaskRunningError) for error in errors), errors
    assert all(error.error_code == "CC.00050015" and error.attempts == 1 for error in errors)  # type: ignore[union-attr]
    stats = emulator.stats()
    assert stats["runs"] == {task.task_id: 1 for task in planned}  # the refused call, once
    assert testing.route_requests(stats, "run") == WAITS
    for task in planned:
        assert emulator.get_task(task.task_id)["last_exec_id"] == before[task.task_id]
    rh.record("hook/run refused as running", runs=WAITS, run_requests=testing.route_requests(stats, "run"))
