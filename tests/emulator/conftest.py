"""Fixtures of the emulator tests; they talk to the emulator with plain HTTP clients, never with our hook."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulator_helpers import Api

from airflow_provider_codecheck.emulator.server import EmulatorServer
from airflow_provider_codecheck.emulator.state import ManualClock


@pytest.fixture
def emulator(codecheck_emulator_clean: EmulatorServer) -> EmulatorServer:
    """The plugin's shared plain-HTTP emulator, reset for this test."""
    return codecheck_emulator_clean


@pytest.fixture
def api(emulator: EmulatorServer) -> Iterator[Api]:
    client = Api(emulator, emulator.issue_token())
    yield client
    client.close()


@pytest.fixture(scope="module")
def manual_clock_server() -> Iterator[tuple[EmulatorServer, ManualClock]]:
    clock = ManualClock()
    with EmulatorServer(clock=clock) as server:
        yield server, clock


@pytest.fixture
def clocked(manual_clock_server: tuple[EmulatorServer, ManualClock]) -> Iterator[tuple[Api, ManualClock]]:
    """An emulator whose time only moves with ``clock.advance()``, reset for this test."""
    server, clock = manual_clock_server
    server.reset()
    client = Api(server, server.issue_token())
    yield client, clock
    client.close()
