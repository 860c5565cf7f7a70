"""Fixtures of the reliability suite: a reset emulator, the connection pointing at it (process-wide caches: tests/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import reliability_helpers as rh

from airflow_provider_codecheck.emulator.server import EmulatorServer

_LOADED_AT = time.monotonic()


@pytest.fixture(autouse=True)
def _remove_written_dags() -> Iterator[None]:
    yield
    while rh.WRITTEN_DAGS:
        rh.WRITTEN_DAGS.pop().unlink(missing_ok=True)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The metadata database for ``dag.test()`` (SQLite in the session's temporary AIRFLOW_HOME)."""
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def emu(codecheck_emulator_clean: EmulatorServer) -> EmulatorServer:
    return codecheck_emulator_clean


@pytest.fixture
def use_connection(emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``use_connection(auth_type="password", conn_id=CONN_ID, **extra)``: point a connection at ``emu``."""

    def configure(auth_type: str = "password", conn_id: str = rh.CONN_ID, **extra: Any) -> str:
        monkeypatch.setenv(rh.conn_env(conn_id), rh.connection_json(emu.base_url, auth_type, **extra))
        return conn_id

    return configure


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    """With ``$RELIABILITY_FIGURES`` set, add the run's counts, runtime and machine to the figures file."""
    import os
    import platform
    from datetime import datetime, timezone

    if not os.environ.get(rh.FIGURES_ENV):
        return
    import airflow

    stats = terminalreporter.stats
    rh.record(
        "run",
        passed=len(stats.get("passed", [])),
        failed=len(stats.get("failed", [])) + len(stats.get("error", [])),
        skipped=len(stats.get("skipped", [])),
        deselected=len(stats.get("deselected", [])),
        seconds=round(time.monotonic() - _LOADED_AT, 1),  # from collection to the summary
        airflow=airflow.__version__,
        python=platform.python_version(),
        cpus=os.cpu_count(),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    )
