"""The process-wide request budgets: one ``Budget`` per (service endpoint, identity), and what keys them.

``budget_key`` names the identity without a secret; ``stated_limit`` reads the limit a gateway 429 names.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable

from airflow_provider_codecheck.core.budget import Budget
from airflow_provider_codecheck.core.settings import AkSkAuth, ConnectionSettings, PasswordAuth, TokenAuth

BudgetKey = tuple[str, str]
"""(service endpoint, identity): an AK, an IAM user, or a digest of a static token; never a secret."""

_STATED_RE = re.compile(rb"limit:\s*(\d+(?:\.\d+)?)\s*,\s*time:\s*(\d+)\s*(second|minute|hour)")
_UNIT_S = {b"second": 1.0, b"minute": 60.0, b"hour": 3600.0}


def stated_limit(body: bytes) -> float | None:
    """The rate a gateway 429 names (APIG.0308 "...over ratelimit,limit:100,time:1 second"), requests/s."""
    found = _STATED_RE.search(body[:2048])
    if found is None:
        return None
    per = float(found.group(2)) * _UNIT_S[found.group(3)]
    limit = float(found.group(1)) / per if per > 0 else 0.0
    return limit if limit > 0 else None


def budget_key(settings: ConnectionSettings) -> BudgetKey:
    auth = settings.auth
    if isinstance(auth, AkSkAuth):
        identity = f"ak {auth.access_key}"
    elif isinstance(auth, PasswordAuth):
        identity = f"user {auth.domain}/{auth.user}"
    else:
        assert isinstance(auth, TokenAuth)
        identity = "token " + hashlib.sha256(auth.token.encode()).hexdigest()[:12]
    return (settings.endpoint, identity)


_log = logging.getLogger("airflow_provider_codecheck.budget")


def _log_notice(level: str, message: str) -> None:
    getattr(_log, level)(message)


class Budgets:
    """The process-wide budgets, one per key; the cap follows the latest connection read."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._budgets: dict[BudgetKey, Budget] = {}

    def get(self, key: BudgetKey, cap: float | None = None) -> Budget:
        with self._lock:
            budget = self._budgets.get(key)
            if budget is None:
                name = f"request budget of {key[0]} ({key[1]})"
                budget = self._budgets[key] = Budget(name, cap, self.clock, _log_notice)
                return budget
        if budget.cap != cap:
            budget.set_cap(cap)
        return budget

    def clear(self) -> None:
        with self._lock:
            self._budgets.clear()


BUDGETS = Budgets()
