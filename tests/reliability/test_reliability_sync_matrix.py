"""The fault matrix through the worker-side (sync, ``requests``) path.

* ``CodeCheckHook.wait_for_scan`` in threads (10 concurrent waits per fault kind);
* ``CodeCheckTaskSensor`` in poke mode inside real Airflow (``dag.test()``), three sensors per kind;
* ``CodeCheckRunTaskOperator`` whose run is refused with CC.00050015: it attaches to the running scan.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import airflow_support
import pytest
import reliability_helpers as rh

from airflow_provider_codecheck import testing
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook

THREADS = 10
FAST_THREADS = 6
MIXED_KINDS = ("http_502", "reset", "token_expired", "unknown_status", "busy_200")
MIXED_Q = 1 - (1 - rh.FAULT_P) ** (1 / len(MIXED_KINDS))
ALL_KINDS = (*rh.TRANSIENT_KINDS, *rh.PERMANENT_KINDS)


def _wait_all(planned: list[rh.Planned]) -> list[dict]:
    def wait(task: rh.Planned) -> dict:
        return CodeCheckHook(rh.CONN_ID).wait_for_scan(
            task.task_id, rh.POLL, timeout=rh.GLOBAL_TIMEOUT_S - 10
        )

    with ThreadPoolExecutor(len(planned)) as pool:
        return list(pool.map(wait, planned, timeout=rh.GLOBAL_TIMEOUT_S))


def _hook_scenario(
    emulator, reliability_conn, row: str, kinds: tuple[str, ...], q: float, waits: int
) -> None:
    reliability_conn(**rh.timeout_extra(kinds))
    planned = rh.add_tasks(emulator, row.replace("/", "-"), waits, rh.plan(kinds, q))
    started = time.monotonic()
    with rh.revocations(emulator, kinds) as revoker:
        events = _wait_all(planned)
    elapsed = time.monotonic() - started

    assert rh.check_final_events(planned, [[event] for event in events]) == []
    stats = emulator.stats()
    requests, ideal = rh.progress_requests(stats), rh.ideal_polls(planned)
    k = max(rh.k_for(kind) for kind in kinds)
    rh.check_revocations(stats, revoker)
    assert requests <= k * ideal, f"{requests} progress requests for {ideal:.0f} ideal polls (k={k})"
    rh.record(
        row,
        waits=waits,
        faulted_share=round(rh.faulted_share(stats), 3),
        correct=f"{waits}/{waits}",
        requests=requests,
        ideal=round(ideal),
        ratio=round(requests / ideal, 2),
        k=k,
        seconds=round(elapsed, 1),
    )


def test_hook_waits_survive_mixed_faults(emulator, reliability_conn):
    _hook_scenario(emulator, reliability_conn, "hook/mixed", MIXED_KINDS, MIXED_Q, FAST_THREADS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", rh.TRANSIENT_KINDS)
def test_hook_fault_matrix(emulator, reliability_conn, kind):
    _hook_scenario(emulator, reliability_conn, f"hook/{kind}", (kind,), rh.FAULT_P, THREADS)


@pytest.mark.parametrize(("kind", "error_code"), rh.PERMANENT_KINDS.items())
def test_hook_permanent_error_ends_the_wait_after_one_attempt(emulator, reliability_conn, kind, error_code):
    reliability_conn()
    planned = rh.add_tasks(emulator, f"hperm-{kind}", THREADS, [rh.fault_spec(kind, 1.0)])
    for event in _wait_all(planned):
        assert event["status"] == "error"
        assert event["error_code"] == error_code
        assert event["request_id"]
        assert event["request_id"] in event["message"]
    assert rh.progress_requests(emulator.stats()) == THREADS
    rh.record(
        f"hook/{kind}", waits=THREADS, attempts_per_wait=rh.progress_requests(emulator.stats()) / THREADS
    )


# --- the sensor in poke mode, in real Airflow -------------------------------------------------------------


def _sensor_dag(
    emulator, reliability_conn, row: str, kinds: tuple[str, ...], q: float, permanent: bool
) -> None:
    reliability_conn(**rh.timeout_extra(kinds))
    faults = rh.plan(kinds, q)
    if faults and not permanent:
        # Three sensors poke only a handful of times: make sure each task's first poll is faulted, so the
        # scenario never passes without a fault (which poll draws a fault shifts with timing).
        first = {key: value for key, value in faults[0].items() if key != "probability"}
        faults = [{**first, "count": 1}, *faults]
    # Each scan is started by an upstream operator that does not wait (dag.test's start-up takes seconds, so
    # scans started beforehand would be over before the first poke); a permanent error needs no scan.
    planned = rh.add_tasks(
        emulator, row.replace("/", "-"), 3, faults, min_duration=1.5, step=0.5, running=permanent
    )
    sensor_kwargs = {
        "codecheck_conn_id": rh.CONN_ID,
        "deferrable": False,
        "mode": "poke",
        "poke_interval": rh.POLL,
        "timeout": 60,
    }
    tasks: dict[str, tuple[str, dict]] = {}
    edges = []
    for task in planned:
        sensor = f"wait_{task.final_status}"
        if not permanent:
            start = f"start_{task.final_status}"
            tasks[start] = (
                "CodeCheckRunTaskOperator",
                {
                    "codecheck_task_id": task.task_id,
                    "codecheck_conn_id": rh.CONN_ID,
                    "wait_for_completion": False,
                },
            )
            edges.append((start, sensor))
        tasks[sensor] = ("CodeCheckTaskSensor", {"codecheck_task_id": task.task_id, **sensor_kwargs})
    dag_id = "rel_poke_" + row.split("/", 1)[1]
    started = time.monotonic()
    with rh.revocations(emulator, kinds) as revoker:
        dag_run = airflow_support.build_dag(dag_id, tasks, edges).test()
    elapsed = time.monotonic() - started

    states = airflow_support.ti_states(dag_run)
    stats = emulator.stats()
    sensors = {name: state for name, state in states.items() if name.startswith("wait_")}
    if permanent:
        assert sensors == {"wait_1": "failed", "wait_2": "failed", "wait_3": "failed"}
        assert rh.progress_requests(stats) == len(sensors)  # one poke each, no retry
    else:
        # A failed or stopped scan fails the sensor (CodeCheckScanFailed); the verdict is in XCom first.
        assert states == {
            "start_1": "success",
            "start_2": "success",
            "start_3": "success",
            "wait_1": "failed",
            "wait_2": "success",
            "wait_3": "failed",
        }
        for task in planned:
            assert airflow_support.xcom(dag_run, f"wait_{task.final_status}", "status") == task.status_name
        assert stats["runs"] == {task.task_id: 1 for task in planned}
        if revoker is None:
            assert stats["faults_injected"]
        # The starting operator reads the progress once before its run: one more poll per task.
        ideal = rh.ideal_polls(planned) + len(planned)
        assert rh.progress_requests(stats) <= max(map(rh.k_for, kinds)) * ideal
    rh.record(
        row,
        sensors=len(sensors),
        states=sensors,
        requests=rh.progress_requests(stats),
        ideal=round(rh.ideal_polls(planned)),
        faults=stats["faults_injected"],
        seconds=round(elapsed, 1),
    )


@pytest.mark.usefixtures("airflow_db")
def test_poke_sensors_survive_mixed_faults(emulator, reliability_conn):
    _sensor_dag(emulator, reliability_conn, "poke/mixed", MIXED_KINDS, MIXED_Q, permanent=False)


@pytest.mark.slow
@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_poke_sensor_fault_matrix(emulator, reliability_conn, kind):
    permanent = kind in rh.PERMANENT_KINDS
    _sensor_dag(
        emulator, reliability_conn, f"poke/{kind}", (kind,), 1.0 if permanent else rh.FAULT_P, permanent
    )


# --- the operator: a run refused as "running" attaches, and starts no scan --------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "worker"])
def test_operator_attaches_to_a_running_scan_and_starts_none(emulator, reliability_conn, deferrable):
    reliability_conn()
    # One operator per DAG run (dag.test() runs tasks one after another), on a scan long enough to still be
    # running when dag.test() reaches it (start-up took up to ~14 s on a loaded 2-core machine).
    (task,) = rh.add_tasks(emulator, "op-run200", 1, min_duration=30.0, running=True)
    before = emulator.get_task(task.task_id)["last_exec_id"]
    kwargs = {
        "codecheck_task_id": task.task_id,
        "codecheck_conn_id": rh.CONN_ID,
        "deferrable": deferrable,
        "poll_interval": rh.POLL,
        "fail_on_failure": False,
    }
    dag_run = airflow_support.build_dag(
        "rel_operator_run200", {"scan": ("CodeCheckRunTaskOperator", kwargs)}
    ).test()
    assert airflow_support.ti_states(dag_run) == {"scan": "success"}
    stats = emulator.stats()
    assert stats["runs"] == {task.task_id: 1}  # the refused call, once
    assert testing.route_requests(stats, "run") == 1
    assert emulator.get_task(task.task_id)["last_exec_id"] == before  # attached: no scan of ours
    assert airflow_support.xcom(dag_run, "scan", "status") == task.status_name
    rh.record(f"operator/run refused as running ({'deferred' if deferrable else 'worker'})", run_requests=1)
