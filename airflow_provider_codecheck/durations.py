"""Durations DAG authors give the operator and the sensor: seconds or ``timedelta``, checked with a clear error.

Imported when a DAG file is parsed: only the standard library here (the exception class is imported on error).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def _invalid(message: str) -> Exception:
    from airflow_provider_codecheck.exceptions import CodeCheckConfigurationError

    return CodeCheckConfigurationError(message)


def seconds(value: Any, name: str) -> float:
    """A positive duration given as seconds (int/float) or ``datetime.timedelta``; else a clear error."""
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        result = float(value)
    else:
        raise _invalid(
            f"{name} must be seconds (a number) or a datetime.timedelta, got {type(value).__name__} {value!r}"
        )
    if not result > 0 or result == float("inf"):
        raise _invalid(f"{name} must be positive and finite, got {value!r}")
    return result


def max_interval(value: Any, poll_interval: float) -> float | None:
    """``max_poll_interval``: None (the pacer's default) or a duration not shorter than ``poll_interval``."""
    if value is None:
        return None
    result = seconds(value, "max_poll_interval")
    if result < poll_interval:
        raise _invalid(
            f"max_poll_interval ({result:g} s) must not be shorter than the poll interval ({poll_interval:g} s)"
        )
    return result
