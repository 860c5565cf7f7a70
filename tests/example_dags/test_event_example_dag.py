"""The event-driven example DAG: imports cleanly on Airflow 3 (watcher wired to our trigger) and defines no DAG on
Airflow 2. ``dag.test()`` does not run watchers: the trigger itself is tested in test_event_trigger.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_provider_codecheck.triggers import events

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_codecheck_event_driven.py"


def load():
    spec = importlib.util.spec_from_file_location("example_codecheck_event_driven_under_test", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dagbag_parses_it_without_errors() -> None:
    from airflow.models.dagbag import DagBag

    bag = DagBag(
        dag_folder=str(EXAMPLE)
    )  # examples are off (AIRFLOW__CORE__LOAD_EXAMPLES, tests/conftest.py)
    assert bag.import_errors == {}
    expected = {"example_codecheck_event_driven"} if events.EVENT_TRIGGERS_SUPPORTED else set()
    assert set(bag.dag_ids) == expected


@pytest.mark.skipif(
    not events.EVENT_TRIGGERS_SUPPORTED, reason="event-driven scheduling needs Airflow >= 3.0"
)
def test_asset_watcher_runs_our_trigger() -> None:
    module = load()
    (watcher,) = module.scan_finished.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath == "airflow_provider_codecheck.triggers.events.CodeCheckScanEventTrigger"
    assert kwargs["codecheck_task_id"] == "nightly-scan"
    assert kwargs["only_success"] is True
    assert module.scan_finished.uri.startswith("codecheck://nightly-scan")
    assert module.dag.timetable.asset_condition is not None


def test_scans_in_reads_the_payloads_of_the_triggering_events() -> None:
    module = load()
    payload = {"scan_id": "job:e1", "status": "success", "is_access": True, "issue_counts": {}}
    triggering = {
        "asset": [
            SimpleNamespace(extra={"from_trigger": True, "payload": payload}),
            SimpleNamespace(extra={"from_trigger": False}),  # a manual event without a scan
        ]
    }
    assert module.scans_in(triggering) == [payload]
    assert module.scans_in(None) == []
