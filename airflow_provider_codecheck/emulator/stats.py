"""Counters the tests read through ``GET /_emulator/stats``.

All mutation happens on the emulator's event loop thread, so plain ints and Counters are enough.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

RECENT_TARGETS = 50


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests: Counter[str] = Counter()
        self.requests_total = 0
        self.iam_tokens_issued = 0
        self.auth_failures = 0
        self.connections = 0
        self.tls_handshakes = 0
        self.faults_injected: Counter[str] = Counter()
        # Run calls that reached the task (scan started, or refused as running); admin-started scans do not.
        self.runs: Counter[str] = Counter()
        # Requests by route and User-Agent: tells which client (e.g. the trigger's aiohttp one) made them.
        self.user_agents: Counter[str] = Counter()
        # Requests refused by the quota (not by throttle_429 faults, which count in faults_injected), by route.
        self.throttled: Counter[str] = Counter()
        # AK/SK requests answered 401, by AK (bad signature, unknown AK, bad date, or the AK was locked).
        self.aksk_failures: Counter[str] = Counter()
        # Requests whose target was in absolute form (``GET http://host:port/v2/...``), as sent to a proxy.
        self.proxied_requests = 0
        # The last request targets exactly as received (API and unknown routes, not the admin API).
        self.recent_targets: deque[str] = deque(maxlen=RECENT_TARGETS)
        self.tokens_revoked = 0

    def record_request(self, route: str, outcome: str, user_agent: str = "") -> None:
        """``outcome`` is the HTTP status as text, or ``reset`` when the connection was aborted."""
        self.requests[f"{route} {outcome}"] += 1
        self.user_agents[f"{route} {user_agent}"] += 1
        self.requests_total += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": self.requests_total,
            "iam_tokens_issued": self.iam_tokens_issued,
            "auth_failures": self.auth_failures,
            "connections": self.connections,
            "tls_handshakes": self.tls_handshakes,
            "faults_injected": dict(self.faults_injected),
            "runs": dict(self.runs),
            "user_agents": dict(self.user_agents),
            "throttled": dict(self.throttled),
            "aksk_failures": dict(self.aksk_failures),
            "proxied_requests": self.proxied_requests,
            "recent_targets": list(self.recent_targets),
            "tokens_revoked": self.tokens_revoked,
        }
