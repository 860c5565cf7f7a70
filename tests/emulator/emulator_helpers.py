"""Helpers for the emulator tests (a module of its own: ``conftest`` is not importable by a unique name)."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from airflow_provider_codecheck.core import signing
from airflow_provider_codecheck.emulator import defaults
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


def signed_request(
    base_url,
    method,
    path,
    *,
    query=(),
    body=b"",
    ak=defaults.ACCESS_KEY,
    sk=defaults.SECRET_KEY,
    when=None,
    extra=None,
):
    """Sign with core.signing and return (url, headers) ready for requests."""
    headers = {
        "Host": urlsplit(base_url).netloc,
        "Content-Type": "application/json",
        signing.DATE_HEADER: signing.format_sdk_date(when or datetime.now(UTC)),
        **(extra or {}),
    }
    headers["Authorization"] = signing.authorization_header(ak, sk, method, path, query, headers, body)
    query_string = signing.canonical_query(query)
    return base_url + path + (f"?{query_string}" if query_string else ""), headers


def raw_request(port: int, request_line_target: str, headers: dict[str, str], method: str = "GET") -> bytes:
    """Send one request over a bare socket (``Connection: close``) with the target exactly as given."""
    lines = [f"{method} {request_line_target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    lines += ["Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def split_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body
