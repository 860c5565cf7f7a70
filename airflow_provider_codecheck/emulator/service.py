"""All mutable emulator state and the operations on it, shared by the HTTP handlers and the admin API.

Everything here runs on the emulator's event loop thread; ``EmulatorServer`` marshals calls from other threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_codecheck.emulator.auth import Authenticator, TokenStore, WallClock, utc_now
from airflow_provider_codecheck.emulator.defaults import NULL_FIELD_MODES, EmulatorConfig
from airflow_provider_codecheck.emulator.faults import (
    TOKEN_REJECTION_MESSAGES,
    Fault,
    FaultPlan,
    FaultSpecError,
)
from airflow_provider_codecheck.emulator.quota import Quota
from airflow_provider_codecheck.emulator.state import (
    SEVERITIES,
    SUCCEEDED,
    TERMINAL,
    SpecError,
    Task,
    TaskRegistry,
    terminal_progress,
)
from airflow_provider_codecheck.emulator.stats import Stats


class EmulatorService:
    def __init__(
        self,
        config: EmulatorConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: WallClock = utc_now,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.clock = clock
        self.wall_clock = wall_clock
        self.stats = Stats()
        self.tasks = TaskRegistry(clock)
        self.tokens = TokenStore(clock)
        self.auth = Authenticator(
            self.tokens,
            self.config.access_keys,
            self.config.max_clock_skew_s,
            wall_clock,
            clock,
            lock_threshold=self.config.aksk_lock_threshold,
            lock_s=self.config.aksk_lock_s,
        )
        self.quota = Quota(clock)
        # "null": fields without a value are sent as JSON null (the docs list null as a value);
        # "absent": they are left out, as a Java service with NON_NULL serialisation would do.
        self.null_fields = self.config.null_fields
        self.global_faults = FaultPlan([], self.config.seed)
        self.task_faults: dict[str, FaultPlan] = {}
        self._anchor: tuple[float, datetime] | None = None

    # --- admin operations -------------------------------------------------------------------------------

    def put_task(self, spec: dict[str, Any]) -> dict[str, Any]:
        task = Task.from_spec(spec)
        # Build the plan first so an invalid fault spec leaves the previous task untouched.
        plan = FaultPlan(task.faults, seed=f"{self.config.seed}:{task.task_id}")
        self.task_faults[task.task_id] = plan
        self.tasks.put(task, running=bool(spec.get("running")))
        return self.task_json(task)

    def task_json(self, task: Task) -> dict[str, Any]:
        return {**task.to_admin_json(self.clock()), "runs": self.stats.runs.get(task.task_id, 0)}

    def commit(self, task_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        """ "A commit started a scan": a scan not started through the API (no run call, not in ``runs``).

        ``spec``: optional ``duration_s``, ``final_status`` (1/2/3) and ``defects`` for this scan. Raises
        KeyError for an unknown task and SpecError for a bad spec or while a scan is running.
        """
        task = self.tasks.get(task_id)
        if task is None:
            raise KeyError(task_id)
        unknown = sorted(set(spec) - {"duration_s", "final_status", "defects"})
        if unknown:
            raise SpecError(f"unknown commit keys {unknown}; known: duration_s, final_status, defects")
        duration = spec.get("duration_s")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0
        ):
            raise SpecError("duration_s must be a non-negative number")
        final_status = spec.get("final_status")
        if final_status is not None and final_status not in TERMINAL:
            raise SpecError("final_status must be 1 (failed), 2 (success) or 3 (stopped)")
        defects = spec.get("defects")
        if defects is not None and (
            not isinstance(defects, dict)
            or any(not isinstance(defects.get(n, 0), int) or defects.get(n, 0) < 0 for n in SEVERITIES)
        ):
            raise SpecError("defects must map critical/major/minor/suggestion to non-negative integers")
        now = self.clock()
        if task.is_running(now):
            raise SpecError("a scan of this task is running (the service refuses a second one)")
        scan = task.start_scan(
            now,
            duration_s=None if duration is None else float(duration),
            final_status=final_status,
            defects=defects,
            origin="commit",
        )
        return {"exec_id": scan.exec_id, "task": self.task_json(task)}

    def set_faults(self, specs: list[Any], seed: int | None = None) -> None:
        self.global_faults = FaultPlan(specs, self.config.seed if seed is None else seed)

    def issue_token(self, lifetime_s: float | None = None) -> str:
        return self.tokens.issue(self.config.token_lifetime_s if lifetime_s is None else lifetime_s)

    def revoke_tokens(self, tokens: list[str] | None = None, code: str = "APIGW.0301") -> list[str]:
        if code not in TOKEN_REJECTION_MESSAGES:
            raise FaultSpecError(f"code must be one of {sorted(TOKEN_REJECTION_MESSAGES)}")
        if tokens is not None and (
            not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens)
        ):
            raise FaultSpecError("tokens must be a list of strings (or omitted for every issued token)")
        revoked = self.tokens.revoke(tokens, code)
        self.stats.tokens_revoked += len(revoked)
        return revoked

    def set_null_fields(self, mode: str) -> None:
        if mode not in NULL_FIELD_MODES:
            raise ValueError(f"null_fields must be one of {list(NULL_FIELD_MODES)}")
        self.null_fields = mode

    def stats_snapshot(self) -> dict[str, Any]:
        return {**self.stats.snapshot(), "aksk_locked": self.auth.locked_keys()}

    def reset(self) -> None:
        self.tasks.clear()
        self.task_faults.clear()
        self.global_faults = FaultPlan([], self.config.seed)
        self.tokens.clear()
        self.auth.reset()
        self.quota.off()
        self.null_fields = self.config.null_fields
        self.stats.reset()

    # --- request-time helpers ---------------------------------------------------------------------------

    def lookup(self, task_id: str) -> Task | None:
        task = self.tasks.get(task_id)
        if task is None and self.config.auto_create:
            task = self.tasks.put(Task(task_id=task_id, initial=terminal_progress(SUCCEEDED)))
        return task

    def pick_fault(self, route: str, task_id: str | None, token_auth: bool = True) -> Fault | None:
        """Per-task faults first, then the global plan; the injected fault is counted."""
        plan = self.task_faults.get(task_id) if task_id else None
        fault = (plan.pick(route, token_auth) if plan else None) or self.global_faults.pick(route, token_auth)
        if fault is not None:
            self.stats.faults_injected[fault.kind] += 1
        return fault

    def wall_time_of(self, monotonic_moment: float) -> datetime:
        """Map a moment of the monotonic clock to UTC wall time (for the timestamps in responses).

        Anchored once, so a moment keeps its timestamp even when only a ManualClock moves."""
        if self._anchor is None:
            self._anchor = (self.clock(), self.wall_clock())
        mono, wall = self._anchor
        return wall + timedelta(seconds=monotonic_moment - mono)
