"""Turning a wait's final event into the XCom values and the verdict DAG authors chain on."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_codecheck.core.models import SEVERITIES
from airflow_provider_codecheck.core.waiting import validate_event
from airflow_provider_codecheck.exceptions import (
    CodeCheckConfigurationError,
    CodeCheckQualityGateFailed,
    CodeCheckScanFailed,
    CodeCheckWaitError,
)

# Keys pushed to XCom by the sensor and the operator (the return value holds the same dict).
XCOM_KEYS = ("codecheck_task_id", "exec_id", "task_status", "status", "ratio", "info", "defects")


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


def result_of(event: dict[str, Any], defects: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "codecheck_task_id": event["codecheck_task_id"],
        "exec_id": event.get("exec_id"),
        "task_status": event.get("task_status"),
        "status": event["status"],
        "ratio": event.get("ratio"),
        "info": event.get("info"),
        "defects": defects,
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
