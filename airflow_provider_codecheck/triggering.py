"""``start_from_trigger``: where a sensor (or a ``run=False`` operator) starts and ends in the triggerer.

Supported on Airflow >= 3.3.2 only (docs/start-from-trigger.md):

- 3.3.0/3.3.1 load the wrong DAG version for the trigger and a stale task stops every trigger of a batch
  (apache/airflow#69988, #69841); 3.1/3.2 ignore the flag; 3.0 and 2.11 start the trigger but never render
  its templates (2.11: kwargs used verbatim), so ``codecheck_task_id="{{ params.scan }}"`` would reach the
  service unrendered. There the task defers from a worker as usual, with one log line.
- Mapped tasks (``.partial().expand()``) are not started from the triggerer by Airflow 3.x (GH-52141): this
  package sets ``start_trigger_args`` per instance only, never on the class, so a mapped task has none and runs
  in a worker (the same log line).

This module is imported at DAG parse time by the sensor and the operator: it imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from functools import lru_cache
from typing import Any

MINIMUM_AIRFLOW = "3.3.2"
TRIGGER_CLASSPATH = "airflow_provider_codecheck.triggers.codecheck.CodeCheckTaskTrigger"


def timeout_margin(poll_interval: float) -> float:
    """Seconds the scheduler's trigger timeout (a backstop) lies beyond the wait's own deadline.

    The trigger ends the wait itself at the deadline with a clear ``timeout`` verdict (soft_fail applies, the
    XComs are right); the scheduler's timeout would instead send the task to a worker to fail there.
    """
    return 2 * poll_interval + 60.0


@lru_cache(maxsize=1)
def unsupported_reason() -> str | None:
    """Why this Airflow cannot run a task from the triggerer to its end, or None when it can."""
    import airflow
    from packaging.version import InvalidVersion, Version

    try:
        version = Version(Version(airflow.__version__).base_version)
    except InvalidVersion:
        return f"the Airflow version {airflow.__version__!r} cannot be read"
    if version < Version(MINIMUM_AIRFLOW):
        return f"Airflow {airflow.__version__} is older than {MINIMUM_AIRFLOW}"
    return None


def start_trigger_args(trigger_kwargs: dict[str, Any], wait_timeout: float, margin: float) -> Any:
    """The ``StartTriggerArgs`` of one task: a new object, never the class attribute changed in place."""
    from airflow.triggers.base import StartTriggerArgs

    template = StartTriggerArgs(
        trigger_cls=TRIGGER_CLASSPATH,
        trigger_kwargs=None,
        next_method="execute_complete",
        next_kwargs=None,
        timeout=None,
    )
    return dataclasses.replace(
        template, trigger_kwargs=trigger_kwargs, timeout=timedelta(seconds=wait_timeout + margin)
    )


def enable(task: Any, trigger_kwargs: dict[str, Any], wait_timeout: float, margin: float) -> None:
    """Set ``start_from_trigger``/``start_trigger_args`` on ``task`` where this Airflow supports it.

    The keys of ``trigger_kwargs`` that are also the task's ``template_fields`` hold the raw template strings:
    Airflow 3.3 renders them in the triggerer, into the trigger attributes of the same names.
    """
    if unsupported_reason() is not None:
        task.start_from_trigger = False
        return
    task.start_from_trigger = True
    task.start_trigger_args = start_trigger_args(trigger_kwargs, wait_timeout, margin)


def fallback_reason() -> str:
    """Why a task asked to start from the triggerer runs ``execute()`` in a worker (logged once per try)."""
    return unsupported_reason() or (
        "this is a mapped task (Airflow does not start those from the triggerer) or a dag.test() run"
    )
