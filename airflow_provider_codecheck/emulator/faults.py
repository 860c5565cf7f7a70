"""Fault plans: which requests get a failure instead of the normal answer, reproducibly under a seed.

A spec is ``{"kind": K, "probability": p}`` or ``{"kind": K, "count": N}`` (the next N matching requests),
with optional ``routes``, ``retry_after`` (throttle_429) and ``delay_s`` (slow). The first spec of a plan that
fires wins. Probabilities draw from the plan's own ``random.Random``, so a given seed and request sequence
always give the same faults.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

CODEARTS_ROUTES = frozenset({"progress", "run", "stop", "defects_summary", "defects_statistic"})
ALL_ROUTES = CODEARTS_ROUTES | {"iam"}

TRANSIENT_KINDS = frozenset(
    {
        "busy_400",
        "busy_200",
        "running_200",
        "throttle_429",
        "http_500",
        "http_502",
        "http_503",
        "html_502",
        "reset",
        "slow",
        "malformed_json",
        "unknown_status",
        "token_expired",
    }
)
PERMANENT_KINDS = frozenset({"forbidden_403", "not_found_404", "no_permission_200", "project_missing_200"})
KINDS = TRANSIENT_KINDS | PERMANENT_KINDS

# Kinds that only make sense on one route default to it; all others default to every CodeArts route.
DEFAULT_ROUTES = {"running_200": frozenset({"run"}), "unknown_status": frozenset({"progress"})}


class FaultSpecError(ValueError):
    """A fault spec is invalid; answered with HTTP 400 by the admin API."""


@dataclass
class Fault:
    kind: str
    routes: frozenset[str]
    probability: float | None = None
    remaining: int | None = None
    retry_after: float = 1.0
    delay_s: float = 30.0

    @classmethod
    def from_spec(cls, spec: Any) -> Fault:
        if not isinstance(spec, dict):
            raise FaultSpecError("a fault spec must be an object")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise FaultSpecError(f"unknown fault kind {kind!r}; known: {sorted(KINDS)}")
        routes = spec.get("routes")
        if routes is None:
            route_set = DEFAULT_ROUTES.get(kind, CODEARTS_ROUTES)
        elif isinstance(routes, list) and set(routes) <= ALL_ROUTES:
            route_set = frozenset(routes)
        else:
            raise FaultSpecError(f"routes must be a list drawn from {sorted(ALL_ROUTES)}")
        has_p, has_n = "probability" in spec, "count" in spec
        if has_p == has_n:
            raise FaultSpecError("give exactly one of probability or count")
        fault = cls(
            kind=kind,
            routes=route_set,
            retry_after=float(spec.get("retry_after", 1)),
            delay_s=float(spec.get("delay_s", 30)),
        )
        if has_p:
            probability = spec["probability"]
            if not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
                raise FaultSpecError("probability must be within [0, 1]")
            fault.probability = float(probability)
        else:
            count = spec["count"]
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise FaultSpecError("count must be a non-negative integer")
            fault.remaining = count
        return fault

    def fires(self, route: str, rng: random.Random) -> bool:
        if route not in self.routes:
            return False
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True
        # Draw even for p == 1 so adding a certain fault does not shift the sequence of later draws.
        return rng.random() < (self.probability or 0.0)


class FaultPlan:
    def __init__(self, specs: list[Any] | None = None, seed: int | str = 0) -> None:
        self.faults = [Fault.from_spec(spec) for spec in specs or []]
        self.rng = random.Random(seed)

    def pick(self, route: str) -> Fault | None:
        for fault in self.faults:
            if fault.fires(route, self.rng):
                return fault
        return None
