"""The three example DAGs in the real stack: the sensor and the operators defer, the triggerer (its trigger logs)
does the polling, downstream tasks get the XCom values, and the quality gate fails a run over its limits.

The ``runs`` fixture plays the scenario once: first the sensor alone, waiting for a scan nobody has started
(it must defer and poll); then that scan starts "elsewhere" and three operator runs start beside it. Every
test checks one thing of what was seen.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import pytest
from stack import (
    DAG_GATE,
    DAG_RUN_AND_BRANCH,
    DAG_SENSOR,
    DEFECTS_BAD,
    DEFECTS_OK,
    EXAMPLE_DAGS,
    TERMINAL_RUN_STATES,
    AirflowApi,
    Emulator,
    RunningStack,
    RunWatch,
    StopWaiting,
    log,
    observe,
    trigger_log_events,
    wait_until,
    watch_runs,
)

# run label -> (the watched task, the CodeArts task it waits for)
DEFERRING = {
    "sensor": ("wait_for_scan", "nightly-scan"),
    "branch": ("run_scan", "demo-scan"),
    "gate": ("scan_with_gate", "gate-scan"),
    "gate_fail": ("scan_with_gate", "gate-fail-scan"),
}


@dataclass
class ExampleRuns:
    watches: dict[str, RunWatch]
    idle_polls: int  # progress requests while the sensor waited for the scan nobody had started
    stats: dict[str, Any]  # the emulator's, once every run ended
    auth_failures: int  # during the runs


@pytest.fixture(scope="module")
def runs(airflow_stack: RunningStack, example_dags_parsed: None, codecheck_connection: str) -> ExampleRuns:
    api, emulator = airflow_stack.api, airflow_stack.emulator
    auth_failures_before = emulator.stats()["auth_failures"]
    # The sensor waits for a scan started elsewhere: nightly-scan exists but was never run.
    emulator.put_task(task_id="nightly-scan")
    emulator.put_task(task_id="demo-scan", duration_s=10, defects=DEFECTS_OK)
    emulator.put_task(task_id="gate-scan", duration_s=8, defects=DEFECTS_OK)
    emulator.put_task(task_id="gate-fail-scan", duration_s=8, defects=DEFECTS_BAD)
    for dag_id in EXAMPLE_DAGS:
        api.unpause(dag_id)

    # Phase 1, the sensor alone: it defers and the triggerer polls the never-run task (this also warms the
    # triggerer up, so the later triggers start at once).
    sensor = RunWatch(DAG_SENSOR, "e2e-sensor")
    api.trigger(DAG_SENSOR, sensor.run_id)
    log("triggered the sensor DAG; waiting for its trigger to poll the not-yet-started scan")

    def sensor_polled_the_idle_task() -> bool:
        observe(api, emulator, sensor)
        if sensor.state in TERMINAL_RUN_STATES:
            raise StopWaiting(f"the sensor run ended early: {sensor.state} {sensor.states_seen}")
        texts = trigger_log_events(airflow_stack.airflow_home, sensor, "wait_for_scan")
        seen = any("CodeArts task nightly-scan: not_started" in t for t in texts)
        return seen and sensor.progress_polls_while_deferred("wait_for_scan") >= 3

    wait_until("the sensor's trigger to poll nightly-scan", sensor_polled_the_idle_task, 240, 0.4)
    idle_polls = sensor.progress_polls_while_deferred("wait_for_scan")

    # Phase 2: the scan starts "elsewhere", and the three operator runs start.
    emulator.put_task(task_id="nightly-scan", duration_s=4, running=True, defects=DEFECTS_OK)
    watches = {
        "sensor": sensor,
        "branch": RunWatch(DAG_RUN_AND_BRANCH, "e2e-branch"),
        "gate": RunWatch(DAG_GATE, "e2e-gate-pass"),
        "gate_fail": RunWatch(DAG_GATE, "e2e-gate-fail"),
    }
    api.trigger(DAG_RUN_AND_BRANCH, watches["branch"].run_id)
    api.trigger(DAG_GATE, watches["gate"].run_id)
    api.trigger(DAG_GATE, watches["gate_fail"].run_id, {"codecheck_task_id": "gate-fail-scan"})
    log("started the nightly-scan scan in the emulator and triggered 3 operator DAG runs; watching them")
    watch_runs(api, emulator, list(watches.values()), timeout=300)
    stats = emulator.stats()
    return ExampleRuns(watches, idle_polls, stats, stats["auth_failures"] - auth_failures_before)


def xcom(api: AirflowApi, watch: RunWatch, task_id: str, key: str = "return_value") -> Any:
    return api.xcom(watch.dag_id, watch.run_id, task_id, key)


def dict_in(text: Any) -> Any:
    """The dict literal inside a task's return value such as ``"deploying; defects {...}"``."""
    text = str(text)
    try:
        return ast.literal_eval(text[text.index("{") : text.rindex("}") + 1])
    except ValueError:
        return text


# --- every run: state, deferral, the triggerer's polling ---------------------------------------------------


@pytest.mark.parametrize(
    ("label", "state"),
    [("sensor", "success"), ("branch", "success"), ("gate", "success"), ("gate_fail", "failed")],
)
def test_dag_run_state(runs: ExampleRuns, label: str, state: str) -> None:
    watch = runs.watches[label]
    assert watch.state == state, watch.states_seen


@pytest.mark.parametrize("label", DEFERRING)
def test_entered_deferred(runs: ExampleRuns, label: str) -> None:
    watch, (task_id, _) = runs.watches[label], DEFERRING[label]
    assert watch.saw(task_id, "deferred"), watch.states_seen.get(task_id)


@pytest.mark.parametrize("label", DEFERRING)
def test_a_triggerer_job_held_the_trigger(runs: ExampleRuns, label: str) -> None:
    watch, (task_id, _) = runs.watches[label], DEFERRING[label]
    assert watch.triggerer_jobs.get(task_id)


@pytest.mark.parametrize("label", DEFERRING)
def test_triggerer_log_shows_the_trigger_polling(
    runs: ExampleRuns, airflow_stack: RunningStack, label: str
) -> None:
    watch, (task_id, codecheck_id) = runs.watches[label], DEFERRING[label]
    texts = trigger_log_events(airflow_stack.airflow_home, watch, task_id)
    assert any(f"CodeArts task {codecheck_id}: checking" in text for text in texts), texts


def test_no_authentication_failures_during_the_runs(runs: ExampleRuns) -> None:
    assert runs.auth_failures == 0


# --- the sensor --------------------------------------------------------------------------------------------


def test_sensor_deferred_and_polled_while_nobody_ran_the_scan(runs: ExampleRuns) -> None:
    assert runs.idle_polls >= 3


def test_sensor_started_no_scan(runs: ExampleRuns) -> None:
    assert runs.stats["runs"].get("nightly-scan", 0) == 0


def test_sensor_xcom_status_and_ratio(runs: ExampleRuns, airflow_api: AirflowApi) -> None:
    sensor = runs.watches["sensor"]
    assert xcom(airflow_api, sensor, "wait_for_scan", "status") == "success"
    assert xcom(airflow_api, sensor, "wait_for_scan", "ratio") == 100


def test_sensor_summarize_got_status_and_ratio_from_xcom(runs: ExampleRuns, airflow_api: AirflowApi) -> None:
    assert xcom(airflow_api, runs.watches["sensor"], "summarize") == "scan success at 100%"


# --- run_and_branch ---------------------------------------------------------------------------------------


def test_run_and_branch_xcom_status_and_defects(runs: ExampleRuns, airflow_api: AirflowApi) -> None:
    branch = runs.watches["branch"]
    assert xcom(airflow_api, branch, "run_scan", "status") == "success"
    assert xcom(airflow_api, branch, "run_scan", "defects") == DEFECTS_OK


def test_run_and_branch_xcom_exec_id_is_the_emulators(
    runs: ExampleRuns, airflow_api: AirflowApi, emulator: Emulator
) -> None:
    expected = emulator.task("demo-scan").get("last_exec_id")
    assert xcom(airflow_api, runs.watches["branch"], "run_scan", "exec_id") == expected


def test_run_and_branch_started_one_scan(runs: ExampleRuns) -> None:
    assert runs.stats["runs"].get("demo-scan") == 1


@pytest.mark.parametrize(
    ("task_id", "state"), [("on_verdict", "success"), ("publish", "success"), ("report_failure", "skipped")]
)
def test_run_and_branch_downstream_state(runs: ExampleRuns, task_id: str, state: str) -> None:
    assert runs.watches["branch"].tis[task_id]["state"] == state


def test_run_and_branch_publish_got_the_defects_from_xcom(runs: ExampleRuns, airflow_api: AirflowApi) -> None:
    assert dict_in(xcom(airflow_api, runs.watches["branch"], "publish")) == DEFECTS_OK


# --- quality gate -----------------------------------------------------------------------------------------


def test_quality_gate_pass_xcom_defects(runs: ExampleRuns, airflow_api: AirflowApi) -> None:
    assert xcom(airflow_api, runs.watches["gate"], "scan_with_gate", "defects") == DEFECTS_OK


def test_quality_gate_pass_deploy_got_the_defects_from_xcom(
    runs: ExampleRuns, airflow_api: AirflowApi
) -> None:
    assert dict_in(xcom(airflow_api, runs.watches["gate"], "deploy")) == DEFECTS_OK


@pytest.mark.parametrize(("task_id", "state"), [("scan_with_gate", "failed"), ("deploy", "upstream_failed")])
def test_quality_gate_fail_task_state(runs: ExampleRuns, task_id: str, state: str) -> None:
    assert runs.watches["gate_fail"].tis[task_id]["state"] == state


def test_quality_gate_fail_xcom_defects_pushed_before_failing(
    runs: ExampleRuns, airflow_api: AirflowApi
) -> None:
    assert xcom(airflow_api, runs.watches["gate_fail"], "scan_with_gate", "defects") == DEFECTS_BAD


def test_quality_gate_fail_task_log_names_the_breach(runs: ExampleRuns, airflow_api: AirflowApi) -> None:
    watch = runs.watches["gate_fail"]
    try_number = watch.tis["scan_with_gate"]["try_number"]
    task_log = airflow_api.task_log(DAG_GATE, watch.run_id, "scan_with_gate", try_number)
    assert "failed the quality gate: critical 2 > 0, major 15 > 10" in task_log, task_log[-300:]
