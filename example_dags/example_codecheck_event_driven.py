"""Example 5: event-driven: one DAG run per successful CodeArts Check scan, whoever started it (Airflow >= 3.0).

CodeArts starts most scans itself (on commit, merge request, an execution plan or a pipeline). An
``AssetWatcher`` runs ``CodeCheckScanEventTrigger`` in the triggerer: it reads the task's scan history and
fires one asset event per finished scan, and the scheduler starts this DAG for it. No sensor waits on a
schedule. Delivery is at least once: the task below is idempotent on ``scan_id``. See docs/event-driven.md.

On Airflow 2 (no event-driven scheduling) this file defines no DAG.
"""

from __future__ import annotations

from typing import Any

import pendulum

from airflow_provider_codecheck.triggers.events import EVENT_TRIGGERS_SUPPORTED

CODECHECK_TASK_ID = "nightly-scan"


def scans_in(triggering_asset_events: Any) -> list[dict[str, Any]]:
    """The scan payloads behind this run (several scans can finish before the scheduler acts: one run)."""
    scans = []
    for asset_events in (triggering_asset_events or {}).values():
        for event in asset_events:
            payload = (event.extra or {}).get("payload")
            if isinstance(payload, dict) and payload.get("scan_id"):
                scans.append(payload)
    return scans


if EVENT_TRIGGERS_SUPPORTED:
    from airflow.sdk import DAG, Asset, AssetWatcher, task

    from airflow_provider_codecheck.triggers.events import CodeCheckScanEventTrigger

    scan_finished = Asset(
        f"codecheck://{CODECHECK_TASK_ID}",
        watchers=[
            AssetWatcher(
                name=f"codecheck_scans_{CODECHECK_TASK_ID}",
                trigger=CodeCheckScanEventTrigger(
                    codecheck_task_id=CODECHECK_TASK_ID, poll_interval=60.0, only_success=True
                ),
            )
        ],
    )

    with DAG(
        dag_id="example_codecheck_event_driven",
        schedule=[scan_finished],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["codecheck", "example"],
    ) as dag:

        @task
        def publish(triggering_asset_events: Any = None) -> list[str]:
            published = []
            for scan in scans_in(triggering_asset_events):
                # Idempotent on scan_id: a repeated event (at-least-once) must not publish twice.
                gate = {True: "passed", False: "failed", None: "unknown"}[scan.get("is_access")]
                print(
                    f"scan {scan['scan_id']}: {scan['status']}, service gate {gate}, {scan['issue_counts']}"
                )
                published.append(scan["scan_id"])
            return published

        publish()
