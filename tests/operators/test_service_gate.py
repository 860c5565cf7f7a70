"""The service's own quality gate (issue 14): the defects summary's is_access and figures in XCom, and
fail_on_service_gate, in real Airflow (dag.test on SQLite) against the emulator.

The emulator's gate: is_access "1" when the task has no critical defect, else "0" (emulator README).
"""

from __future__ import annotations

import datetime
import re
import time

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow_support import RecordingTaskInstance, build_dag, ti_states, xcom

from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.models import SEVERITIES, DefectStatistic, DefectSummary
from airflow_provider_codecheck.exceptions import CodeCheckServiceGateFailed
from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator
from airflow_provider_codecheck.results import XCOM_KEYS

pytestmark = pytest.mark.usefixtures("airflow_db")

OPERATOR = "CodeCheckRunTaskOperator"
SENSOR = "CodeCheckTaskSensor"
SUMMARY_KEYS = ("is_access", "issue_count", "code_quality", "risk_coefficient", "last_check_time")
UTC_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# Exactly the default retry policy's 5 attempts: the summary read fails after retries.
SUMMARY_DOWN = [{"kind": "http_500", "count": 5, "routes": ["defects_summary"]}]


def _common(deferrable: bool) -> dict[str, object]:
    # retries: a gate failure must not retry (a retry would start a second scan: counted in runs).
    return {"deferrable": deferrable, "retries": 2, "retry_delay": datetime.timedelta(0)}


def test_summary_keys_are_xcom_keys():
    assert XCOM_KEYS[-5:] == SUMMARY_KEYS


@pytest.mark.parametrize("deferrable", [False, True])
def test_operator_and_sensor_push_the_service_gate(default_conn_emulator, deferrable):
    for task_id, defects in (
        ("g-clean", {"major": 3}),
        ("g-blocked", {"critical": 1}),
        ("g-report", {"critical": 1}),
    ):
        default_conn_emulator.add_task(
            task_id=task_id, duration_s=0.3, final_status=2, running=False, defects=defects
        )
    # A scan started outside Airflow that has ended, then a newer one still running: a sensor given the first
    # one's exec_id must report that execution's summary (job_id), not the task's latest (still running).
    default_conn_emulator.add_task(
        task_id="g-sensed", duration_s=0.1, final_status=2, running=False, defects={"minor": 2}
    )
    first = default_conn_emulator.commit("g-sensed", duration_s=0.1)
    time.sleep(0.4)
    default_conn_emulator.commit("g-sensed", duration_s=120)
    default_conn_emulator.add_task(
        task_id="g-latest", duration_s=1.0, final_status=2, running=True, defects={"critical": 2}
    )
    op = {**_common(deferrable), "poll_interval": 0.2}
    sensor = {"deferrable": deferrable, "poke_interval": 0.2, "timeout": 60}
    dag = build_dag(
        f"service_gate_{deferrable}",
        {
            "clean": (OPERATOR, {"codecheck_task_id": "g-clean", "fail_on_service_gate": True, **op}),
            "blocked": (OPERATOR, {"codecheck_task_id": "g-blocked", "fail_on_service_gate": True, **op}),
            "report": (OPERATOR, {"codecheck_task_id": "g-report", **op}),
            "sensed": (SENSOR, {"codecheck_task_id": "g-sensed", "exec_id": first, **sensor}),
            "latest": (SENSOR, {"codecheck_task_id": "g-latest", **sensor}),
        },
    )
    dag_run = dag.test()
    assert ti_states(dag_run) == {
        "clean": "success",
        "blocked": "failed",  # CodeCheckServiceGateFailed: is_access "0"
        "report": "success",  # fail_on_service_gate is off by default: reported only
        "sensed": "success",
        "latest": "success",  # the sensor never fails on is_access
    }
    assert default_conn_emulator.stats()["runs"] == {
        "g-clean": 1,
        "g-blocked": 1,
        "g-report": 1,
    }  # no retry, no 2nd scan

    def summary(task: str) -> dict[str, object]:
        return {key: xcom(dag_run, task, key) for key in SUMMARY_KEYS}

    clean = summary("clean")
    assert clean["is_access"] is True
    assert clean["issue_count"] == 3
    assert clean["code_quality"] == 91.0  # the emulator: 100 - 3 per major
    assert clean["risk_coefficient"] == 0.3  # issues / 10
    assert UTC_TIME.match(str(clean["last_check_time"]))
    for task in ("blocked", "report"):
        assert xcom(dag_run, task, "status") == "success"  # pushed before failing
        assert summary(task)["is_access"] is False
        assert summary(task)["issue_count"] == 1
    sensed = summary("sensed")
    assert xcom(dag_run, "sensed", "exec_id") == first
    assert sensed["is_access"] is True
    assert sensed["issue_count"] == 2
    # The first execution's end: the task's latest summary (the running scan) has no last_check_time.
    assert UTC_TIME.match(str(sensed["last_check_time"]))
    latest = summary("latest")
    assert latest["is_access"] is False
    assert latest["issue_count"] == 2
    assert UTC_TIME.match(str(latest["last_check_time"]))


@pytest.mark.parametrize("deferrable", [False, True])
def test_unreadable_summary_keeps_the_verdict(default_conn_emulator, deferrable):
    for task_id in ("s-plain", "s-gated", "s-sensed"):
        default_conn_emulator.add_task(
            task_id=task_id,
            duration_s=0.3,
            final_status=2,
            running=task_id == "s-sensed",
            defects={"critical": 1},
            faults=SUMMARY_DOWN,
        )
    op = {**_common(deferrable), "poll_interval": 0.2}
    dag = build_dag(
        f"service_gate_down_{deferrable}",
        {
            "plain": (OPERATOR, {"codecheck_task_id": "s-plain", **op}),
            "gated": (OPERATOR, {"codecheck_task_id": "s-gated", "fail_on_service_gate": True, **op}),
            "sensed": (
                SENSOR,
                {
                    "codecheck_task_id": "s-sensed",
                    "deferrable": deferrable,
                    "poke_interval": 0.2,
                    "timeout": 60,
                },
            ),
        },
    )
    dag_run = dag.test()
    # Without fail_on_service_gate the verdict stands; with it, the task fails without an Airflow retry.
    assert ti_states(dag_run) == {"plain": "success", "gated": "failed", "sensed": "success"}
    for task in ("plain", "gated", "sensed"):
        assert xcom(dag_run, task, "status") == "success"
        assert xcom(dag_run, task, "task_status") == 2
        for key in SUMMARY_KEYS:
            assert xcom(dag_run, task, key) is None
    for task in ("plain", "gated"):
        assert xcom(dag_run, task, "defects") == {"critical": 1, "major": 0, "minor": 0, "suggestion": 0}
    stats = default_conn_emulator.stats()
    assert stats["runs"] == {"s-plain": 1, "s-gated": 1}  # no second scan
    assert stats["requests"]["defects_summary 500"] == 15  # every read exhausted its retries


def _success_event(task_id: str) -> dict[str, object]:
    return {
        "status": "success",
        "codecheck_task_id": task_id,
        "exec_id": None,
        "task_status": 2,
        "ratio": 100,
        "info": None,
        "message": "ended",
    }


def test_unreadable_summary_fails_the_service_gate_naming_the_error(default_conn_emulator):
    default_conn_emulator.add_task(
        task_id="s-msg", duration_s=0.3, final_status=2, running=False, faults=SUMMARY_DOWN
    )
    operator = CodeCheckRunTaskOperator(task_id="scan", codecheck_task_id="s-msg", fail_on_service_gate=True)
    ti = RecordingTaskInstance()
    with pytest.raises(AirflowFailException, match=r"APIGW\.0500") as raised:
        operator.execute_complete({"ti": ti}, _success_event("s-msg"))
    assert not isinstance(raised.value, CodeCheckServiceGateFailed)  # unknown, not a failed gate
    assert "request id" in str(raised.value)
    assert ti.xcom["status"] == "success"
    assert ti.xcom["is_access"] is None


def test_failed_service_gate_names_the_verdict(default_conn_emulator):
    default_conn_emulator.add_task(task_id="s-red", final_status=2, running=False, defects={"critical": 4})
    operator = CodeCheckRunTaskOperator(task_id="scan", codecheck_task_id="s-red", fail_on_service_gate=True)
    ti = RecordingTaskInstance()
    with pytest.raises(CodeCheckServiceGateFailed, match=r"is_access '0'"):
        operator.execute_complete({"ti": ti}, _success_event("s-red"))
    assert ti.xcom["is_access"] is False
    assert ti.xcom["issue_count"] == 4


class _Hook:
    """A defects summary without is_access (the service omits fields it has no value for)."""

    def get_defects_statistic(self, task_id: str) -> DefectStatistic:
        return DefectStatistic(severity=dict.fromkeys(SEVERITIES, 0), status={}, raw={})

    def get_scan_summary(self, task_id: str, job_id: str | None = None) -> DefectSummary:
        return DefectSummary(issue_count=0, counts={}, code_quality=None, last_exec_time=None, raw={})


def test_unknown_verdict_does_not_fail_the_service_gate():
    operator = CodeCheckRunTaskOperator(task_id="scan", codecheck_task_id="t", fail_on_service_gate=True)
    operator.__dict__["hook"] = _Hook()  # the cached_property
    ti = RecordingTaskInstance()
    result = operator.execute_complete({"ti": ti}, _success_event("t"))
    assert result["is_access"] is None
    assert ti.xcom["is_access"] is None
    assert ti.xcom["issue_count"] == 0


def test_failed_scan_reads_no_summary(default_conn_emulator):
    default_conn_emulator.add_task(task_id="s-fail", final_status=1, running=False)
    operator = CodeCheckRunTaskOperator(
        task_id="scan", codecheck_task_id="s-fail", fail_on_failure=False, fail_on_service_gate=True
    )
    ti = RecordingTaskInstance()
    event = {**_success_event("s-fail"), "status": "failed", "task_status": 1, "ratio": None}
    result = operator.execute_complete({"ti": ti}, event)
    assert result["status"] == "failed"
    assert all(ti.xcom[key] is None for key in SUMMARY_KEYS)
    assert "defects_summary 200" not in default_conn_emulator.stats()["requests"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {
                "is_access": "1",
                "issue_count": 3,
                "code_quality": "91.5",
                "risk_coefficient": "0.3",
                "last_check_time": "2026-01-01T00:00:00Z",
            },
            {
                "is_access": True,
                "issue_count": 3,
                "code_quality": 91.5,
                "risk_coefficient": 0.3,
                "last_check_time": "2026-01-01T00:00:00Z",
            },
        ),
        # The service omits fields it has no value for; odd values are unknown, never guessed.
        ({}, dict.fromkeys(SUMMARY_KEYS)),
        ({"is_access": "maybe", "risk_coefficient": "n/a"}, dict.fromkeys(SUMMARY_KEYS)),
        ({"is_access": 0}, {**dict.fromkeys(SUMMARY_KEYS), "is_access": False}),
    ],
)
def test_summary_fields_from_the_summary(raw, expected):
    assert ops.scan_summary_fields(ops.parse_defects_summary(raw)) == expected
    assert ops.scan_summary_fields(None) == dict.fromkeys(SUMMARY_KEYS)
