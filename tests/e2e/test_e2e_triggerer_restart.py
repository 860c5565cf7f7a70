"""A triggerer killed in the middle of a deferred wait: a new triggerer takes the trigger over and resumes the
wait; the run still succeeds, on try 1, with exactly one scan started.

The ``restart`` fixture plays the scenario once (trigger, wait for the triggerer to poll, SIGKILL it, start a
new one, watch the run end); every test checks one thing of what was seen.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from stack import (
    DAG_RUN_AND_BRANCH,
    DEFECTS_OK,
    AirflowApi,
    Emulator,
    RunningStack,
    RunWatch,
    event_texts,
    log,
    observe,
    start_triggerer,
    trigger_log_files,
    wait_until,
    watch_runs,
)

RESTART_SCAN_S = 60  # a new triggerer needs ~15 s to start and up to ~20 s more for its first poll here
SCAN = "restart-scan"


@dataclass
class Restart:
    watch: RunWatch
    killed_exit: int | None  # the old triggerer's exit code
    state_at_kill: str  # run_scan's, when the triggerer was killed
    scan_running_at_kill: bool
    polls_at_kill: int
    polls_after: int
    old_jobs: set[int]
    new_jobs: set[int]
    auth_failures: int  # during the run


@pytest.fixture(scope="module")
def restart(airflow_stack: RunningStack, example_dags_parsed: None, codecheck_connection: str) -> Restart:
    api, emulator, stack = airflow_stack.api, airflow_stack.emulator, airflow_stack.stack
    auth_failures_before = emulator.stats()["auth_failures"]
    # Long enough for a new triggerer to start, take the trigger over and still see the scan running.
    emulator.put_task(task_id=SCAN, duration_s=RESTART_SCAN_S, defects=DEFECTS_OK)
    api.unpause(DAG_RUN_AND_BRANCH)
    watch = RunWatch(DAG_RUN_AND_BRANCH, "e2e-triggerer-restart")
    api.trigger(DAG_RUN_AND_BRANCH, watch.run_id, {"codecheck_task_id": SCAN})
    log(f"triggered a {RESTART_SCAN_S} s scan; waiting for the triggerer to poll it")

    def triggerer_polled_twice() -> bool:
        observe(api, emulator, watch)
        return watch.progress_polls_while_deferred("run_scan") >= 2

    wait_until("run_scan deferred and polled by the triggerer", triggerer_polled_twice, 120, 0.4)
    old_jobs = set(watch.triggerer_jobs.get("run_scan", set()))
    old = airflow_stack.services["triggerer"]
    log(
        f"killing the triggerer (SIGKILL to pid {old.proc.pid} and its process group) while run_scan is deferred"
    )
    stack.stop(old, signal.SIGKILL, grace=10)
    killed_exit = old.proc.poll()
    state_at_kill = watch.tis["run_scan"]["state"]
    scan_running = emulator.task(SCAN).get("running") is True
    time.sleep(1)  # a poll the dying triggerer had in flight lands before the count below
    polls_at_kill = emulator.progress_requests()
    airflow_stack.services["triggerer"] = start_triggerer(stack, airflow_stack.env)

    watch.triggerer_jobs["run_scan"] = set()
    watch_runs(api, emulator, [watch], timeout=180)
    stats = emulator.stats()
    return Restart(
        watch,
        killed_exit,
        state_at_kill,
        scan_running,
        polls_at_kill,
        emulator.progress_requests(),
        old_jobs,
        set(watch.triggerer_jobs.get("run_scan", set())),
        stats["auth_failures"] - auth_failures_before,
    )


def new_job_texts(restart: Restart, airflow_home: Path) -> list[str]:
    """What the new triggerer job(s) logged for run_scan."""
    texts = []
    for path in trigger_log_files(airflow_home, DAG_RUN_AND_BRANCH, restart.watch.run_id, "run_scan"):
        if any(path.endswith(f".trigger.{job}.log") for job in restart.new_jobs - restart.old_jobs):
            texts.extend(event_texts(Path(path).read_text(errors="replace").splitlines()))
    return texts


def test_triggerer_killed_while_run_scan_deferred_and_the_scan_running(restart: Restart) -> None:
    assert restart.killed_exit is not None
    assert restart.state_at_kill == "deferred"
    assert restart.scan_running_at_kill


def test_dag_run_succeeds(restart: Restart) -> None:
    assert restart.watch.state == "success", restart.watch.states_seen


def test_new_triggerer_polled_the_emulator(restart: Restart) -> None:
    assert restart.polls_after > restart.polls_at_kill


def test_a_new_triggerer_job_took_the_trigger_over(restart: Restart) -> None:
    assert restart.new_jobs - restart.old_jobs, (restart.old_jobs, restart.new_jobs)


def test_both_triggerer_jobs_logged_the_trigger(restart: Restart, airflow_stack: RunningStack) -> None:
    files = trigger_log_files(
        airflow_stack.airflow_home, DAG_RUN_AND_BRANCH, restart.watch.run_id, "run_scan"
    )
    assert len(files) >= 2, [os.path.basename(path) for path in files]


def test_new_triggerer_resumed_the_wait_while_the_scan_ran(
    restart: Restart, airflow_stack: RunningStack
) -> None:
    texts = new_job_texts(restart, airflow_stack.airflow_home)
    assert any(f"CodeArts task {SCAN}: checking" in text for text in texts), texts


def test_run_scan_succeeded(restart: Restart) -> None:
    assert restart.watch.tis["run_scan"]["state"] == "success"


def test_run_scan_not_retried(restart: Restart) -> None:
    assert restart.watch.tis["run_scan"]["try_number"] == 1


def test_no_duplicate_scan(restart: Restart, emulator: Emulator) -> None:
    assert emulator.task(SCAN).get("runs") == 1


def test_run_scan_xcom_status(restart: Restart, airflow_api: AirflowApi) -> None:
    assert airflow_api.xcom(DAG_RUN_AND_BRANCH, restart.watch.run_id, "run_scan", "status") == "success"


@pytest.mark.parametrize(("task_id", "state"), [("publish", "success"), ("report_failure", "skipped")])
def test_downstream_state(restart: Restart, task_id: str, state: str) -> None:
    assert restart.watch.tis[task_id]["state"] == state


def test_no_authentication_failures_during_the_run(restart: Restart) -> None:
    assert restart.auth_failures == 0
