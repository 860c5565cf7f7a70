"""Turning a wait's final event into the XCom values and the verdict DAG authors chain on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_codecheck.core.models import SEVERITIES, DefectSummary
from airflow_provider_codecheck.core.operations import SCAN_SUMMARY_KEYS, scan_summary_fields
from airflow_provider_codecheck.core.waiting import validate_event
from airflow_provider_codecheck.exceptions import (
    CodeCheckConfigurationError,
    CodeCheckQualityGateFailed,
    CodeCheckScanFailed,
    CodeCheckWaitError,
)

# Keys pushed to XCom by the sensor and the operator (the return value holds the same dict). The last five
# come from the execution's defects summary, read after a successful scan (None otherwise, or if unreadable):
# is_access (bool: the verdict of the quality gate configured on the task in CodeArts), issue_count (int),
# code_quality (float), risk_coefficient (float), last_check_time (str, UTC yyyy-MM-ddTHH:mm:ssZ).
XCOM_KEYS = (
    "codecheck_task_id",
    "exec_id",
    "task_status",
    "status",
    "ratio",
    "info",
    "defects",
    *SCAN_SUMMARY_KEYS,
)


def given_id(value: Any) -> str | None:
    """A rendered id, or None when absent (None, empty, or the text "None" of a rendered None XCom)."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "None") else text


def checked_event(event: Any) -> dict[str, Any]:
    try:
        return validate_event(event)
    except ValueError as error:
        raise CodeCheckWaitError(f"CodeArts Check wait returned an invalid event: {error}") from None


def result_of(
    event: dict[str, Any], defects: dict[str, int] | None = None, summary: DefectSummary | None = None
) -> dict[str, Any]:
    return {
        "codecheck_task_id": event["codecheck_task_id"],
        "exec_id": event.get("exec_id"),
        "task_status": event.get("task_status"),
        "status": event["status"],
        "ratio": event.get("ratio"),
        "info": event.get("info"),
        "defects": defects,
        **scan_summary_fields(summary),
    }


def push_result(context: Any, result: dict[str, Any]) -> None:
    ti = context["ti"]
    for key in XCOM_KEYS:
        ti.xcom_push(key=key, value=result.get(key))


def raise_unless_finished(event: dict[str, Any]) -> None:
    """Raise for events that carry no scan verdict (error, timeout)."""
    if event["status"] in ("error", "timeout"):
        raise CodeCheckWaitError(event["message"])


def raise_for_scan(event: dict[str, Any]) -> None:
    if event["status"] in ("failed", "stopped"):
        raise CodeCheckScanFailed(event["message"])


def validate_quality_gate(gate: Any) -> dict[str, int]:
    """A gate as a dict of severity -> maximum count; a JSON object string (a rendered template) is accepted.

    Raises ``CodeCheckConfigurationError`` (an ``AirflowFailException``: no retry) when it is invalid.
    """
    if gate is None or (isinstance(gate, str) and not gate.strip()):
        return {}
    if isinstance(gate, str):
        try:
            gate = json.loads(gate)
        except ValueError:
            raise CodeCheckConfigurationError(
                f"quality_gate must be a dict or a JSON object string, got {gate!r}"
            ) from None
    if not isinstance(gate, dict):
        raise CodeCheckConfigurationError(
            f"quality_gate must be a dict of severity -> maximum count, got {type(gate).__name__}"
        )
    unknown = sorted(str(severity) for severity in set(gate) - set(SEVERITIES))
    if unknown:
        raise CodeCheckConfigurationError(
            f"quality_gate has unknown severities {unknown}; use {', '.join(SEVERITIES)}"
        )
    limits: dict[str, int] = {}
    for severity, limit in gate.items():
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise CodeCheckConfigurationError(
                f"quality_gate[{severity!r}] must be a non-negative int, got {limit!r}"
            )
        limits[severity] = limit
    return limits


def check_quality_gate(task_id: str, gate: dict[str, int], defects: dict[str, int]) -> None:
    breaches = [
        f"{sev} {defects.get(sev, 0)} > {limit}" for sev, limit in gate.items() if defects.get(sev, 0) > limit
    ]
    if breaches:
        raise CodeCheckQualityGateFailed(
            f"CodeArts task {task_id} failed the quality gate: {', '.join(breaches)}"
        )


# --- The verdict: one pure decision, used where the task ends (the worker's execute_complete/poke, or the
# triggerer for start_from_trigger), so both ends push the same XComs and raise for the same reasons.


@dataclass(frozen=True)
class Verdict:
    """What a finished wait means for the Airflow task.

    ``result``: the XCom dict to push (key by key, see ``XCOM_KEYS``) and, on success, to return; None when
    nothing is pushed (timeout, permanent error). ``error``: the exception the task raises after pushing, None
    on success. ``warnings``: lines to log (a service gate that gave no verdict).
    """

    result: dict[str, Any] | None
    error: Exception | None = None
    warnings: tuple[str, ...] = ()


def sensor_verdict(event: dict[str, Any], summary: DefectSummary | None) -> Verdict:
    """The sensor's verdict for a validated event (``checked_event``) and the summary read after a success.

    Timeout -> ``AirflowSensorTimeout`` (soft_fail skips); permanent error -> ``CodeCheckWaitAborted`` (not an
    AirflowException, so soft_fail cannot skip it); failed/stopped -> the keys, then ``CodeCheckScanFailed``.
    """
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    from airflow_provider_codecheck.exceptions import CodeCheckWaitAborted

    if event["status"] == "timeout":
        return Verdict(None, AirflowSensorTimeout(event["message"]))
    if event["status"] == "error":
        return Verdict(None, CodeCheckWaitAborted(event["message"]))
    result = result_of(event, None, summary)
    if event["status"] in ("failed", "stopped"):
        return Verdict(result, CodeCheckScanFailed(event["message"]))
    return Verdict(result)


def operator_verdict(
    event: dict[str, Any],
    *,
    defects: dict[str, int] | None = None,
    defects_error: Exception | None = None,
    summary: DefectSummary | None = None,
    summary_error: Exception | None = None,
    fail_on_failure: bool = True,
    gate: dict[str, int] | None = None,
    fail_on_service_gate: bool = False,
) -> Verdict:
    """The operator's verdict for a validated event and what was read after a success (or the read errors).

    Order of the checks (the first that fails is raised, after the keys are pushed): the scan's status
    (``fail_on_failure``), the ``quality_gate`` (validated), the counts it needs, the service gate.
    """
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_codecheck.exceptions import CodeCheckServiceGateFailed

    task_id = event["codecheck_task_id"]
    if event["status"] in ("error", "timeout"):
        return Verdict(None, CodeCheckWaitError(event["message"]))
    result = result_of(event, defects, summary)
    if fail_on_failure and event["status"] in ("failed", "stopped"):
        return Verdict(result, CodeCheckScanFailed(event["message"]))
    if defects is not None and gate:
        try:
            check_quality_gate(task_id, gate, defects)
        except CodeCheckQualityGateFailed as breach:
            return Verdict(result, breach)
    elif defects_error is not None and gate:
        # No Airflow retry: a retry would start a second full scan just to read counts.
        return Verdict(
            result,
            AirflowFailException(
                f"CodeArts task {task_id} succeeded (verdict pushed to XCom), but the quality gate cannot be "
                f"checked: reading its defect statistic failed: {defects_error}"
            ),
        )
    if not (fail_on_service_gate and event["status"] == "success"):
        return Verdict(result)
    if summary_error is not None:
        # No Airflow retry: a retry would start a second full scan just to read the summary.
        return Verdict(
            result,
            AirflowFailException(
                f"CodeArts task {task_id} succeeded (verdict pushed to XCom), but the service's quality gate "
                f"cannot be checked: reading its defects summary failed: {summary_error}"
            ),
        )
    raw = summary.raw.get("is_access") if summary is not None else None
    if result["is_access"] is False:
        return Verdict(
            result,
            CodeCheckServiceGateFailed(
                f"CodeArts task {task_id} failed the quality gate configured on the task in CodeArts Check "
                f"(is_access {raw!r})"
            ),
        )
    if result["is_access"] is None:
        return Verdict(
            result,
            warnings=(
                f"CodeArts task {task_id}: the service gave no quality-gate verdict (is_access {raw!r}); "
                "fail_on_service_gate does not fail the task on an unknown verdict",
            ),
        )
    return Verdict(result)
