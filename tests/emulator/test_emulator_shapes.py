"""Field shapes: ratio "NN%", null or absent fields, the full defects-summary, extra fields, odd ratios."""

from __future__ import annotations

import re

import pytest
import requests

NEVER = {"task_status": None, "progress": {"ratio": None, "info": None}}

# ShowTaskDetailResponse (huaweicloudsdkcodecheck 3.1.46 model; ShowTaskDetailV2 page) field -> type.
SUMMARY_TYPES = {
    "task_id": str,
    "task_name": str,
    "creator_id": str,
    "git_url": str,
    "git_branch": str,
    "last_check_time": str,
    "last_exec_time": str,
    "check_type": str,
    "created_at": str,
    "trigger_type": str,
    "is_access": str,
    "code_line_total": int,
    "code_line": int,
    "issue_count": int,
    "complexity_count": int,
    "duplicated_lines": int,
    "comment_lines": int,
    "duplicated_blocks": int,
    "code_quality": float,
    "risk_coefficient": float,
    "duplication_ratio": str,
    "comment_ratio": str,
    "file_duplication_ratio": str,
    "cyclomatic_complexity_per_method": str,
    "cyclomatic_complexity_per_file": str,
    "critical_count": str,
    "major_count": str,
    "minor_count": str,
    "suggestion_count": str,
}


def test_ratio_is_a_percent_string_while_running(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=8)
    emulator_api.run("t1")
    for _ in range(8):
        ratio = emulator_api.progress("t1")["progress"]["ratio"]
        assert re.fullmatch(r"\d{1,2}%", ratio), ratio
        clock.advance(1)
    assert emulator_api.progress("t1")["progress"]["ratio"] == "100%"


def test_full_defects_summary(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=1, defects={"critical": 0, "major": 2, "minor": 1})
    emulator_api.run("t1")
    clock.advance(1)
    summary = emulator_api.get("/v2/tasks/t1/defects-summary").json()
    assert set(summary) == set(SUMMARY_TYPES)
    for field, kind in SUMMARY_TYPES.items():
        assert type(summary[field]) is kind, (field, summary[field])
    assert summary["is_access"] == "1"
    assert summary["issue_count"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", summary["last_check_time"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", summary["last_exec_time"])


def test_summary_of_a_never_checked_task_has_null_times(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1", defects={"critical": 1})
    summary = emulator_api.get("/v2/tasks/t1/defects-summary").json()
    assert (summary["last_check_time"], summary["last_exec_time"]) == (None, None)
    assert summary["is_access"] == "0"


# --- null or absent ------------------------------------------------------------------------------------------


def test_nulls_are_sent_by_default(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1")
    assert emulator_api.progress("t1") == NEVER


def test_absent_mode_drops_null_fields(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=1, final_status=1)
    emulator_api.server.set_shape(null_fields="absent")
    assert emulator_api.progress("t1") == {"progress": {}}
    summary = emulator_api.get("/v2/tasks/t1/defects-summary").json()
    assert "last_check_time" not in summary
    assert "is_access" in summary
    emulator_api.run("t1")
    clock.advance(1)
    assert emulator_api.progress("t1") == {"task_status": 1, "progress": {}}, "failed: ratio and info absent"
    assert "exec_id" in emulator_api.run("t1").json(), "a 2xx without nulls is unchanged"


def test_absent_mode_over_http_and_reset_restores_nulls(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1")
    response = requests.post(
        f"{emulator_api.base_url}/_emulator/shape", json={"null_fields": "absent"}, timeout=10
    )
    assert response.json() == {"null_fields": "absent"}
    assert emulator_api.progress("t1") == {"progress": {}}
    assert (
        requests.post(
            f"{emulator_api.base_url}/_emulator/shape", json={"null_fields": "x"}, timeout=10
        ).status_code
        == 400
    )
    emulator_api.server.reset()
    emulator_api.server.add_task(task_id="t1")
    assert (
        emulator_api.get(
            "/v2/tasks/t1/progress", headers={"X-Auth-Token": emulator_api.server.issue_token()}
        ).json()
        == NEVER
    )


def test_absent_mode_in_the_constructor():
    from airflow_provider_codecheck.emulator.server import EmulatorServer

    with EmulatorServer(null_fields="absent") as server:
        server.add_task(task_id="t1")
        headers = {"X-Auth-Token": server.issue_token()}
        assert requests.get(
            f"{server.base_url}/v2/tasks/t1/progress", headers=headers, timeout=10
        ).json() == {"progress": {}}
    with pytest.raises(ValueError, match="null_fields"):
        EmulatorServer(null_fields="maybe")


# --- extra_fields ------------------------------------------------------------------------------------------


def test_extra_fields_keep_the_answer_and_add_unknown_objects(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    emulator_api.server.set_faults([{"kind": "extra_fields", "count": 2}])
    body = emulator_api.progress("t1")
    assert body["task_status"] == 2
    assert body["progress"]["ratio"] == "100%"
    assert body["progress"]["info"] == "success"
    assert body["extension"] == {"code": "CC.1", "message": "not an error"}
    assert isinstance(body["x_trace"], dict)
    assert isinstance(body["progress"]["x_detail"], dict)
    summary = emulator_api.get("/v2/tasks/t1/defects-summary").json()
    assert summary["extension"]["code"] == "CC.1"
    assert summary["critical_count"] == "0"


def test_extra_fields_leave_error_answers_alone(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.set_faults([{"kind": "extra_fields", "count": 1}])
    body = emulator_api.get("/v2/tasks/nope/progress").json()
    assert body == {"error_code": "CC.00050002", "error_msg": "query task detail error"}


# --- odd_ratio -------------------------------------------------------------------------------------------------


def test_odd_ratio_defaults_to_progress_with_na(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    emulator_api.server.set_faults([{"kind": "odd_ratio", "probability": 1}])
    assert emulator_api.progress("t1") == {"task_status": 2, "progress": {"ratio": "N/A", "info": "success"}}
    assert "exec_id" in emulator_api.run("t1").json(), "progress only by default"


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        ("__absent__", {"info": "success"}),
        (None, {"ratio": None, "info": "success"}),
        (100, {"ratio": 100, "info": "success"}),
        ("101%", {"ratio": "101%", "info": "success"}),
    ],
    ids=str,
)
def test_odd_ratio_values(manual_clock_api, ratio, expected):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    emulator_api.server.set_faults([{"kind": "odd_ratio", "count": 1, "ratio": ratio}])
    assert emulator_api.progress("t1") == {"task_status": 2, "progress": expected}
    assert emulator_api.server.stats()["faults_injected"] == {"odd_ratio": 1}


def test_odd_ratio_keeps_the_real_running_status(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", duration_s=10)
    emulator_api.run("t1")
    clock.advance(3)
    emulator_api.server.set_faults([{"kind": "odd_ratio", "count": 1}])
    assert emulator_api.progress("t1") == {"task_status": 0, "progress": {"ratio": "N/A", "info": "running"}}
