"""Fixtures of the client tests: emulators (shared, reset per test) (the process-wide caches are cleared by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import cc_client_helpers as h
import pytest

from airflow_provider_codecheck.emulator.defaults import AccessKey
from airflow_provider_codecheck.emulator.server import EmulatorServer


@pytest.fixture
def emu(codecheck_emulator_clean: EmulatorServer) -> EmulatorServer:
    """The shared plain-HTTP emulator, reset, with task ``t1`` (last scan succeeded, not running)."""
    codecheck_emulator_clean.add_task(task_id=h.TASK, initial_status=2, duration_s=30)
    return codecheck_emulator_clean


@pytest.fixture(scope="session")
def _secret_emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        "127.0.0.1",
        0,
        iam_user=h.SECRET_USER,
        iam_password=h.SECRET_PASSWORD,
        iam_domain=h.SECRET_DOMAIN,
        access_keys={
            h.SECRET_AK: AccessKey(h.SECRET_SK),
            h.TEMP_AK: AccessKey(h.TEMP_SK, security_token=h.SECURITY_TOKEN),
        },
    )
    with server:
        yield server


@pytest.fixture
def secret_emu(_secret_emulator: EmulatorServer) -> EmulatorServer:
    """An emulator that accepts only the distinctive credentials of ``cc_client_helpers``; reset, with ``t1``."""
    _secret_emulator.reset()
    _secret_emulator.add_task(task_id=h.TASK, initial_status=2, duration_s=30)
    return _secret_emulator
