"""Fault plans: which requests get a failure instead of the normal answer, reproducibly under a seed.

A spec is ``{"kind": K, "probability": p}`` or ``{"kind": K, "count": N}`` (the next N matching requests),
with optional ``routes`` and per-kind options (see ``OPTION_DEFAULTS``). The first spec of a plan that fires
wins. Probabilities draw from the plan's own ``random.Random``, so a given seed and request sequence always
give the same faults.

Two families of kinds: most *replace* the answer (the operation never happens); the ``AFTER_KINDS`` first
perform the operation (a ``run`` starts a scan) and then change or lose its answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

CODEARTS_ROUTES = frozenset(
    {"progress", "run", "stop", "defects_summary", "defects_statistic", "checkrecord"}
)
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
        "token_rejected",
        "gateway_timeout_504",
        "reset_after",
        "trickle",
        "huge_body",
        "extra_fields",
        "odd_ratio",
    }
)
PERMANENT_KINDS = frozenset({"forbidden_403", "not_found_404", "no_permission_200", "project_missing_200"})
KINDS = TRANSIENT_KINDS | PERMANENT_KINDS

# Kinds that perform the operation first, then answer differently (or not at all).
AFTER_KINDS = frozenset(
    {"gateway_timeout_504", "reset_after", "trickle", "huge_body", "extra_fields", "odd_ratio"}
)

# Kinds that only make sense on one route default to it; all others default to every CodeArts route.
DEFAULT_ROUTES = {
    "running_200": frozenset({"run"}),
    "unknown_status": frozenset({"progress"}),
    "odd_ratio": frozenset({"progress"}),
}

# 401 answers an IAM token can get from the gateway or the service (reference gateway-and-quotas.md).
TOKEN_REJECTION_MESSAGES = {
    "CC.00000003": "Authentication information expired.",
    "APIG.0301": "Incorrect IAM authentication information: decrypt token fail",
    "APIGW.0301": "Incorrect IAM authentication information: decrypt token fail",
    "APIG.0307": "The token must be updated",
    "APIGW.0307": "The token must be updated",
}
THROTTLE_CODES = ("APIGW.0308", "APIG.0308")
GATEWAY_TIMEOUT_CODES = ("APIG.0203", "APIG.0201", "APIGW.0203", "APIGW.0201")
RETRY_AFTER_FORMS = ("seconds", "date")
ABSENT = "__absent__"

# kind -> option -> default. Options of other kinds are ignored (as before), values are validated.
OPTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "throttle_429": {"code": "APIGW.0308", "retry_after": 1.0, "retry_after_form": "seconds"},
    "slow": {"delay_s": 30.0},
    "token_rejected": {"code": "APIGW.0301"},
    "gateway_timeout_504": {"code": "APIG.0203"},
    "trickle": {"chunk": 1, "delay_s": 1.0},
    "huge_body": {"size_mb": 12.0},
    "odd_ratio": {"ratio": "N/A"},
}


class FaultSpecError(ValueError):
    """A fault spec is invalid; answered with HTTP 400 by the admin API."""


def _non_negative(value: Any, name: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise FaultSpecError(f"{name} must be a non-negative number" + (" or null" if allow_none else ""))
    return float(value)


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise FaultSpecError(f"{name} must be one of {list(allowed)}")
    return str(value)


@dataclass
class Fault:
    kind: str
    routes: frozenset[str]
    probability: float | None = None
    remaining: int | None = None
    retry_after: float | None = 1.0
    delay_s: float = 30.0
    code: str | None = None
    retry_after_form: str = "seconds"
    chunk: int = 1
    size_mb: float = 12.0
    ratio: Any = "N/A"

    @property
    def performs_operation(self) -> bool:
        return self.kind in AFTER_KINDS

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
        fault = cls(kind=kind, routes=route_set)
        fault._set_options({**OPTION_DEFAULTS.get(kind, {}), **spec})
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

    def _set_options(self, options: dict[str, Any]) -> None:
        kind = self.kind
        self.retry_after = _non_negative(options.get("retry_after", 1), "retry_after", allow_none=True)
        self.delay_s = _non_negative(options.get("delay_s", 30), "delay_s") or 0.0
        if kind == "throttle_429":
            self.code = _choice(options["code"], "code", THROTTLE_CODES)
            self.retry_after_form = _choice(
                options["retry_after_form"], "retry_after_form", RETRY_AFTER_FORMS
            )
        elif kind == "token_rejected":
            self.code = _choice(options["code"], "code", tuple(TOKEN_REJECTION_MESSAGES))
        elif kind == "gateway_timeout_504":
            self.code = _choice(options["code"], "code", GATEWAY_TIMEOUT_CODES)
        elif kind == "trickle":
            chunk = options["chunk"]
            if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
                raise FaultSpecError("chunk must be a positive integer (bytes)")
            self.chunk = chunk
        elif kind == "huge_body":
            size = _non_negative(options["size_mb"], "size_mb") or 0.0
            if not 0 < size <= 256:
                raise FaultSpecError("size_mb must be within (0, 256]")
            self.size_mb = size
        elif kind == "odd_ratio":
            self.ratio = options["ratio"]

    def fires(self, route: str, rng: random.Random, token_auth: bool = True) -> bool:
        if route not in self.routes:
            return False
        if self.kind == "token_rejected" and not token_auth:
            return False  # only requests authenticated with X-Auth-Token can have their token rejected
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

    def pick(self, route: str, token_auth: bool = True) -> Fault | None:
        for fault in self.faults:
            if fault.fires(route, self.rng, token_auth):
                return fault
        return None
