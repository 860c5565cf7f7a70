"""Event-driven runs in the full stack (issue 14): the scheduler starts one run of
``example_codecheck_event_driven`` per finished scan of nightly-scan, each ``publish`` task naming its scan;
the watcher keeps its watermark in the asset state store, so a triggerer restart between two scans neither
replays the first nor loses the second.

The ``events`` fixture plays the scenario once; every test checks one thing of what was seen. It runs last
(conftest.MODULE_ORDER): it adds checkrecord/progress/defects-summary requests the other scenarios do not expect.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from stack import (
    CONN_ID,
    CONN_TYPE,
    DAG_EVENT,
    DEFECTS_OK,
    TERMINAL_RUN_STATES,
    AirflowApi,
    RunningStack,
    log,
    start_triggerer,
    wait_until,
)

EVENT_TASK = "nightly-scan"  # the task example_codecheck_event_driven watches
EVENT_ASSET_URI = f"codecheck://{EVENT_TASK}"
EVENT_POLL_S = 60  # the example's poll_interval (hard-coded there): every wait below allows for it
EVENT_PROJECT_ID = "0123456789abcdef0123456789abcdef"  # any 32-character project UUID: the emulator takes it
WATERMARK_KEY = "codecheck_scan_watermark"


@dataclass
class Events:
    project_id: str | None = None  # the connection extra's, after setting it
    runs_before_unpause: int = -1
    asset_uris: list[str] = field(default_factory=list)
    asset_found: bool = False
    baseline: Any = None  # the watcher's first watermark
    scan_ids: list[str] = field(default_factory=list)
    runs_after_scan1: dict[str, dict[str, Any]] = field(default_factory=dict)
    watermark_after_scan1: Any = None
    runs_after_restart: int = -1
    runs_after_scan2: dict[str, dict[str, Any]] = field(default_factory=dict)


def event_runs(api: AirflowApi) -> dict[str, dict[str, Any]]:
    return api.dag_runs(DAG_EVENT)


@pytest.fixture(scope="module")
def events(airflow_stack: RunningStack, example_dags_parsed: None, codecheck_connection: str) -> Events:
    api, emulator = airflow_stack.api, airflow_stack.emulator
    seen = Events()
    # The watcher needs the connection extra project_id (the scan history API has it in its path).
    conn = api.get(f"/connections/{CONN_ID}")
    extra = {**json.loads(conn.get("extra") or "{}"), "project_id": EVENT_PROJECT_ID}
    api.request(
        "PATCH",
        f"/connections/{CONN_ID}",
        params={"update_mask": ["extra"]},
        json={"connection_id": CONN_ID, "conn_type": CONN_TYPE, "extra": json.dumps(extra)},
    )
    seen.project_id = json.loads(api.get(f"/connections/{CONN_ID}").get("extra") or "{}").get("project_id")
    if not emulator.has_task(EVENT_TASK):  # the example-DAG scenario creates it; alone (-k), this module does
        emulator.put_task(task_id=EVENT_TASK)
    wait_until(
        "nightly-scan idle (no scan running)", lambda: not emulator.task(EVENT_TASK).get("running"), 60, 0.5
    )
    seen.runs_before_unpause = len(event_runs(api))

    # The dag-processor attaches a watcher's trigger only to an asset of an unpaused DAG, at the next parse
    # of the file: unpause, then ask for that parse at once (rather than waiting min_file_process_interval).
    records_before = emulator.requests_starting("checkrecord ")
    dag = api.unpause(DAG_EVENT)
    api.request("PUT", f"/parseDagFile/{dag['file_token']}", expect=(201,))
    log(
        "unpaused the event-driven DAG and asked for its file to be parsed; waiting for the watcher's first poll"
    )
    wait_until(
        "the watcher's first read of the scan history (its baseline)",
        lambda: emulator.requests_starting("checkrecord ") > records_before,
        120 + EVENT_POLL_S,
        0.5,
    )
    assets = api.get("/assets", params={"uri_pattern": EVENT_ASSET_URI})["assets"]
    seen.asset_uris = [asset["uri"] for asset in assets]
    # Airflow normalises the URI (codecheck://nightly-scan/); the name stays as written.
    asset = next((a for a in assets if a["uri"].rstrip("/") == EVENT_ASSET_URI), None)
    seen.asset_found = asset is not None
    assert asset is not None, f"the asset {EVENT_ASSET_URI} is not registered: {seen.asset_uris}"

    def watermark() -> dict[str, Any] | None:
        response = api.http.get(f"/api/v2/assets/{asset['id']}/state-store/{WATERMARK_KEY}")
        if response.status_code != 200:
            return None
        value = response.json()["value"]
        return json.loads(value) if isinstance(value, str) else value

    seen.baseline = wait_until("the watcher's watermark in the asset state store", watermark, 30, 0.5)

    def wait_for_runs(count: int, what: str) -> None:
        def done() -> bool:
            runs = event_runs(api)
            return len(runs) >= count and all(r["state"] in TERMINAL_RUN_STATES for r in runs.values())

        wait_until(what, done, EVENT_POLL_S + 120, 1)

    def commit_scan() -> str:
        """A scan of nightly-scan started "from outside" (a commit); its scan id."""
        scan_id = f"job:{emulator.commit(EVENT_TASK, duration_s=2, defects=DEFECTS_OK)['exec_id']}"
        seen.scan_ids.append(scan_id)
        log(f"committed {scan_id} of {EVENT_TASK}; waiting up to {EVENT_POLL_S + 120} s for its DAG run")
        return scan_id

    # Scan 1: exactly one run, for that scan.
    scan1_id = commit_scan()
    wait_for_runs(1, "the DAG run for scan 1")
    time.sleep(3)  # a second (wrong) run would be created at once with the first: give it the time to show
    seen.runs_after_scan1 = event_runs(api)

    # Restart only once the watermark holds scan 1 (it moves at the poll after the event, commit_delay_s
    # later): a restart before that replays scan 1, as documented (at least once).
    def watermark_with_scan1() -> dict[str, Any] | None:
        mark = watermark()
        return mark if mark and scan1_id in (mark.get("seen") or {}) else None

    seen.watermark_after_scan1 = wait_until(
        "scan 1 in the stored watermark", watermark_with_scan1, EVENT_POLL_S + 30, 1
    )
    old = airflow_stack.services["triggerer"]
    log(f"restarting the triggerer (SIGTERM to pid {old.proc.pid}) between the two scans")
    airflow_stack.stack.stop(old, signal.SIGTERM, grace=30)
    records_at_stop = emulator.requests_starting("checkrecord ")
    airflow_stack.services["triggerer"] = start_triggerer(airflow_stack.stack, airflow_stack.env)
    wait_until(
        "the new triggerer's watcher to read the scan history",
        lambda: emulator.requests_starting("checkrecord ") > records_at_stop,
        120,
        0.5,
    )
    time.sleep(8)  # a replayed scan 1 would be fired at that first poll and scheduled within seconds
    seen.runs_after_restart = len(event_runs(api))

    # Scan 2 after the restart: exactly two runs in total, the second for scan 2.
    commit_scan()
    wait_for_runs(2, "the DAG run for scan 2")
    time.sleep(3)  # as for scan 1: a wrong extra run would show within these seconds
    seen.runs_after_scan2 = event_runs(api)
    return seen


def test_connection_extra_project_id_set(events: Events) -> None:
    assert events.project_id == EVENT_PROJECT_ID


def test_no_run_before_the_dag_is_unpaused(events: Events) -> None:
    assert events.runs_before_unpause == 0


def test_the_asset_is_registered(events: Events) -> None:
    assert events.asset_found, events.asset_uris


def test_watcher_stored_its_baseline_watermark(events: Events) -> None:
    """Earlier scans are in the first watermark: seen, with no event for them."""
    assert isinstance(events.baseline, dict)
    assert isinstance(events.baseline.get("seen"), dict), events.baseline


def test_scan_1_makes_exactly_one_asset_triggered_run(events: Events) -> None:
    runs = events.runs_after_scan1
    assert len(runs) == 1, list(runs)
    (run,) = runs.values()
    assert run.get("run_type") == "asset_triggered"


def test_scan_1_run_succeeds(events: Events) -> None:
    (run,) = events.runs_after_scan1.values()
    assert run["state"] == "success"


def test_watermark_holds_scan_1(events: Events) -> None:
    assert events.scan_ids[0] in (events.watermark_after_scan1.get("seen") or {})


def test_no_replay_of_scan_1_after_the_triggerer_restart(events: Events) -> None:
    assert events.runs_after_restart == 1


def test_scan_2_makes_exactly_two_runs_in_total(events: Events) -> None:
    assert len(events.runs_after_scan2) == 2, list(events.runs_after_scan2)


def test_scan_2_run_succeeds(events: Events) -> None:
    new = [run for run_id, run in events.runs_after_scan2.items() if run_id not in events.runs_after_scan1]
    assert [run["state"] for run in new] == ["success"]


def run_for_scan(events: Events, scan: int) -> str:
    """The run id of scan 1's or scan 2's run."""
    if scan == 1:
        return next(iter(events.runs_after_scan1))
    (run_id,) = [run_id for run_id in events.runs_after_scan2 if run_id not in events.runs_after_scan1]
    return run_id


@pytest.mark.parametrize("scan", [1, 2])
def test_publish_task_succeeded(events: Events, airflow_api: AirflowApi, scan: int) -> None:
    tis = airflow_api.task_instances(DAG_EVENT, run_for_scan(events, scan))
    assert (tis.get("publish") or {}).get("state") == "success"


@pytest.mark.parametrize("scan", [1, 2])
def test_publish_xcom_names_the_scan(events: Events, airflow_api: AirflowApi, scan: int) -> None:
    run_id = run_for_scan(events, scan)
    assert airflow_api.xcom(DAG_EVENT, run_id, "publish") == [events.scan_ids[scan - 1]]
