"""pytest fixtures for the CodeArts Check emulator (loaded in every pytest run through the ``pytest11`` entry point).

* ``codecheck_emulator`` (session): a plain-HTTP ``EmulatorServer`` on 127.0.0.1, random port. Not reset
  between tests; use ``codecheck_emulator_clean`` or call ``reset()`` yourself.
* ``codecheck_emulator_clean`` (function): the same server, reset before the test.
* ``codecheck_emulator_tls`` (session): a separate HTTPS server; its CA is at ``.ca_file``.

The import stays cheap (no aiohttp, no Airflow) because every pytest run of the project loads this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_codecheck.emulator.server import EmulatorServer


@pytest.fixture(scope="session")
def codecheck_emulator() -> Iterator[EmulatorServer]:
    from airflow_provider_codecheck.emulator.server import EmulatorServer

    with EmulatorServer("127.0.0.1", 0) as server:
        yield server


@pytest.fixture
def codecheck_emulator_clean(codecheck_emulator: EmulatorServer) -> EmulatorServer:
    codecheck_emulator.reset()
    return codecheck_emulator


@pytest.fixture(scope="session")
def codecheck_emulator_tls() -> Iterator[EmulatorServer]:
    from airflow_provider_codecheck.emulator.server import EmulatorServer

    with EmulatorServer("127.0.0.1", 0, tls=True) as server:
        yield server
