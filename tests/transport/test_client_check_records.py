"""The scan-history operations the event trigger uses: parsers (pure) and both transports against the emulator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import client_helpers as h
import pytest

from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.errors import InvalidResponseError, InvalidTaskIdError
from airflow_provider_codecheck.emulator.server import EmulatorServer

PROJECT = "0123456789abcdef0123456789abcdef"


# --- parsers ------------------------------------------------------------------------------------------------


def test_parse_documented_record() -> None:
    page = ops.parse_check_records(
        {
            "total": 2,
            "data": [
                {
                    "job_id": "e1",
                    "check_time": "2020-02-10T11:31:46Z",
                    "check_end_time": "2020-02-10T11:38:46Z",
                    "issue_counts": {"critical": 0, "serious": 1, "normal": 2, "prompt": 3},
                },
                {"jobId": "e0", "check_time": "2020-02-09 11:31:46", "issue_counts": {}},
            ],
        }
    )
    first, second = page.records
    assert page.total == 2
    assert first.scan_id == "job:e1"
    assert first.issue_counts == {
        "critical": 0,
        "serious": 1,
        "normal": 2,
        "prompt": 3,
    }
    assert first.started == datetime(2020, 2, 10, 11, 31, 46, tzinfo=UTC)
    assert first.ended is not None
    assert first.ended > first.started
    assert second.scan_id == "job:e0"  # the 2025-08 page's spelling
    assert second.started == datetime(2020, 2, 9, 11, 31, 46, tzinfo=UTC)
    assert second.check_end_time is None
    assert second.ended is None


def test_record_without_job_id_is_identified_by_its_start() -> None:
    record = ops.parse_check_records({"data": [{"check_time": "2020-02-10T11:31:46Z"}]}).records[0]
    assert record.scan_id == "start:2020-02-10T11:31:46Z"
    assert ops.parse_check_records({"data": [{}]}).records[0].scan_id is None


def test_empty_and_null_history() -> None:
    assert ops.parse_check_records({}).records == []
    assert ops.parse_check_records({"data": None, "total": 0}).total == 0


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"data": {}},
        {"data": ["x"]},
        {"data": [{"issue_counts": [1]}]},
        {"data": [{"issue_counts": {"critical": "many"}}]},
        {"data": [], "total": "lots"},
    ],
)
def test_malformed_history_is_an_error(body: Any) -> None:
    with pytest.raises(InvalidResponseError):
        ops.parse_check_records(body)


def test_request_shape() -> None:
    op = ops.list_check_records(
        PROJECT, "t1", start_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), limit=1000
    )
    assert op.call.method == "GET"
    assert op.call.path == f"/v2/{PROJECT}/tasks/t1/checkrecord"
    assert dict(op.call.query) == {"limit": "1000", "offset": "0", "start_time": "2026-01-02T03:04:05Z"}
    assert op.call.idempotent
    summary = ops.get_scan_summary("t1", "e1")
    assert summary.call.path == "/v2/tasks/t1/defects-summary"
    assert summary.call.query == (("job_id", "e1"),)


@pytest.mark.parametrize("project", [None, "", "a/b", "..", "x" * 200])
def test_bad_project_id_is_refused_before_sending(project: Any) -> None:
    with pytest.raises(InvalidTaskIdError, match="project id"):
        ops.list_check_records(project, "t1")


def test_limit_bounds() -> None:
    with pytest.raises(ValueError):
        ops.list_check_records(PROJECT, "t1", limit=1001)


@pytest.mark.parametrize(
    ("value", "verdict"),
    [("1", True), ("0", False), ("true", True), ("false", False), (True, True), (None, None), ("?", None)],
)
def test_gate_verdict(value: Any, verdict: bool | None) -> None:
    assert ops.parse_gate_verdict(value) is verdict


# --- real sockets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_history_through_both_transports(emulator_with_t1: EmulatorServer, transport: str) -> None:
    emulator_with_t1.add_task(task_id="hist", duration_s=0, defects={"critical": 2, "major": 1})
    first = emulator_with_t1.commit("hist")
    second = emulator_with_t1.commit("hist", final_status=1, defects={"minor": 5})
    settings = h.settings_for("token", emulator_with_t1)
    page = h.invoke(transport, settings, "execute", ops.list_check_records(PROJECT, "hist"))
    assert [r.job_id for r in page.records] == [second, first]
    assert page.total == 2
    assert page.records[1].issue_counts == {"critical": 2, "serious": 1, "normal": 0, "prompt": 0}
    summary = h.invoke(transport, settings, "execute", ops.get_scan_summary("hist", second))
    assert ops.parse_gate_verdict(summary.raw["is_access"]) is True
    assert summary.counts["minor"] == 5


def test_history_signed_with_aksk(emulator_with_t1: EmulatorServer) -> None:
    emulator_with_t1.add_task(task_id="hist2", duration_s=0)
    emulator_with_t1.commit("hist2")
    page = h.invoke(
        "async", h.aksk_settings(emulator_with_t1), "execute", ops.list_check_records(PROJECT, "hist2")
    )
    assert len(page.records) == 1
