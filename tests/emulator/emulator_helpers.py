"""Helpers for the emulator tests (a module of its own: ``conftest`` is not importable by a unique name)."""

from __future__ import annotations

import time
from typing import Any

import requests

from airflow_provider_codecheck.emulator.server import EmulatorServer


class Api:
    """A thin requests wrapper with the token header set; one Session, so one keep-alive connection."""

    def __init__(self, server: EmulatorServer, token: str | None = None) -> None:
        self.server = server
        self.base_url = server.base_url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["X-Auth-Token"] = token

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.get(self.base_url + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.post(self.base_url + path, **kwargs)

    def progress(self, task_id: str) -> dict[str, Any]:
        response = self.get(f"/v2/tasks/{task_id}/progress")
        assert response.status_code == 200, response.text
        return response.json()

    def run(self, task_id: str) -> requests.Response:
        return self.post(f"/v2/tasks/{task_id}/run")

    def close(self) -> None:
        self.session.close()


def wait_until(condition, timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return bool(condition())
        time.sleep(interval)
    return True
