"""The CLI (clean SIGTERM exit, options) and HTTPS with the generated CA.

Startup time is a benchmark figure (benchmarks/), not a timed assertion here."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import requests

from airflow_provider_codecheck.emulator import defaults


class Cli:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_codecheck.emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        self.ca_file = None
        if "--tls" in args:
            line = self.process.stdout.readline().strip()
            assert line.startswith("CA file: ")
            self.ca_file = line.removeprefix("CA file: ")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=10)


@pytest.fixture
def cli() -> Iterator[Callable[..., Cli]]:
    started: list[Cli] = []

    def start(*args: str) -> Cli:
        started.append(Cli(*args))
        return started[-1]

    yield start
    for instance in started:
        if instance.process.poll() is None:
            instance.process.kill()
            instance.process.wait()


def test_cli_serves_and_exits_cleanly_on_sigterm(cli):
    server = cli()
    assert server.base_url.startswith("http://127.0.0.1:")
    assert requests.get(f"{server.base_url}/_emulator/health", timeout=10).json() == {"status": "ok"}
    assert server.stop() == 0


def test_cli_sigint_also_exits_cleanly(cli):
    server = cli()
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=10) == 0


def test_cli_credentials_and_auto_create(cli):
    server = cli("--iam-user", "alice", "--iam-password", "pw", "--iam-domain", "acme", "--auto-create")
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "alice", "password": "pw", "domain": {"name": "acme"}}},
            },
            "scope": {"project": {"name": "cn-north-4"}},
        }
    }
    response = requests.post(f"{server.base_url}/v3/auth/tokens", json=body, timeout=10)
    assert response.status_code == 201
    headers = {"X-Auth-Token": response.headers["X-Subject-Token"]}
    progress = requests.get(f"{server.base_url}/v2/tasks/any-task/progress", headers=headers, timeout=10)
    assert progress.json()["task_status"] == 2
    body["auth"]["identity"]["password"]["user"]["name"] = defaults.IAM_USER
    assert requests.post(f"{server.base_url}/v3/auth/tokens", json=body, timeout=10).status_code == 401
    assert server.stop() == 0


def test_cli_unknown_task_and_null_fields_options(cli):
    server = cli("--unknown-task", "http_404", "--null-fields", "absent")
    token = requests.post(f"{server.base_url}/_emulator/tokens", json={}, timeout=10).json()["token"]
    headers = {"X-Auth-Token": token}
    missing = requests.get(f"{server.base_url}/v2/tasks/nope/progress", headers=headers, timeout=10)
    assert (missing.status_code, missing.json()["error_code"]) == (404, "CC.00000404")
    requests.post(f"{server.base_url}/_emulator/tasks", json={"task_id": "t1"}, timeout=10)
    progress = requests.get(f"{server.base_url}/v2/tasks/t1/progress", headers=headers, timeout=10)
    assert progress.json() == {"progress": {}}
    assert server.stop() == 0


def test_cli_tls_verifies_against_the_printed_ca(cli):
    server = cli("--tls")
    assert server.base_url.startswith("https://127.0.0.1:")
    assert requests.get(f"{server.base_url}/_emulator/health", verify=server.ca_file, timeout=10).ok
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{server.base_url}/_emulator/health", timeout=10)
    localhost = server.base_url.replace("127.0.0.1", "localhost")
    assert requests.get(f"{localhost}/_emulator/health", verify=server.ca_file, timeout=10).ok
    stats = requests.get(f"{server.base_url}/_emulator/stats", verify=server.ca_file, timeout=10).json()
    # health (127.0.0.1), failed handshake, health (localhost), this stats call
    assert stats["connections"] == 4
    assert stats["tls_handshakes"] == 3
    assert server.stop() == 0


def test_tls_fixture_serves_https(codecheck_emulator_tls):
    server = codecheck_emulator_tls
    server.reset()
    server.add_task(task_id="t1", initial_status=2)
    headers = {"X-Auth-Token": server.issue_token()}
    with requests.Session() as session:
        for _ in range(3):
            response = session.get(
                f"{server.base_url}/v2/tasks/t1/progress", headers=headers, verify=server.ca_file, timeout=10
            )
            assert response.json()["task_status"] == 2
    stats = server.stats()
    assert (stats["connections"], stats["tls_handshakes"]) == (1, 1)
