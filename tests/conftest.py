"""The one conftest of the suite: a throwaway AIRFLOW_HOME (set before anything imports Airflow), the
provider's pytest plugin, and every shared fixture.

Where a test goes: ``tests/<package folder>/`` mirrors ``airflow_provider_codecheck/<package folder>/``
(core, transport, hooks, triggers, sensors, operators, links, emulator), plus ``tests/testing/`` (the public
``testing`` module), ``tests/example_dags/``, ``tests/reliability/`` (the fault matrix, ``make reliability``)
and ``tests/e2e/`` (the real stack). Shared helpers: ``airflow_support.py`` (DAG files and runs) beside this
file; a folder's own helpers in its ``*_helpers.py``.

Emulators (all the same ``EmulatorServer``, on 127.0.0.1, reset for the test unless named otherwise):

* ``emulator``: the shared plain-HTTP emulator, nothing configured;
* ``emulator_with_t1``: the same, with task ``t1`` (last scan succeeded, not running);
* ``default_conn_emulator``: the same, with ``codecheck_default`` pointing at it (IAM password auth);
* ``leakcheck_emulator``: a separate emulator that accepts only the distinctive credentials of
  ``tests/transport/client_helpers.py`` (``*LEAKCANARY*``), with ``t1``;
* ``manual_clock_emulator`` (per module): ``(server, clock)``, an emulator whose time moves only with
  ``clock.advance()``;
* ``emulator_api`` / ``manual_clock_api``: a ``requests`` client (``tests/emulator/emulator_helpers.Api``)
  with a valid X-Auth-Token, for tests of the emulator itself.

From the plugin (``airflow_provider_codecheck/emulator/pytest_plugin.py``): ``codecheck_emulator`` (session),
``codecheck_emulator_clean``, ``codecheck_emulator_tls`` (session, HTTPS) and ``codecheck_connection``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import airflow_support
import pytest

from airflow_provider_codecheck import testing

if TYPE_CHECKING:
    from emulator_helpers import Api

    from airflow_provider_codecheck.emulator.server import EmulatorServer
    from airflow_provider_codecheck.emulator.state import ManualClock

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="codecheck-airflow-home-"))
# dag.test() in Airflow 3 only runs DAGs found in the dags folder: the examples are copied there, and
# tests write their own DAG files beside them (airflow_support.write_dag).
DAGS_FOLDER = AIRFLOW_HOME / "dags"
DAGS_FOLDER.mkdir()
for example in (ROOT / "example_dags").glob("*.py"):
    shutil.copy(example, DAGS_FOLDER)

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ.pop("AIRFLOW_CONN_CODECHECK_DEFAULT", None)

_LOADED_AT = time.monotonic()
TASK = "t1"
"""The task of ``emulator_with_t1`` and ``leakcheck_emulator``."""


def pytest_configure(config: pytest.Config) -> None:
    """Load the provider's opt-in fixtures (users add ``pytest_plugins = [...]``, see its docstring).

    Registered by hand, not with ``pytest_plugins``: an editable install made before the plugin became opt-in
    still loads it through its old ``pytest11`` entry point, and registering a module twice is an error.
    """
    from airflow_provider_codecheck.emulator import pytest_plugin

    if not config.pluginmanager.is_registered(pytest_plugin):
        config.pluginmanager.register(pytest_plugin, "codecheck_emulator")


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Each test starts with the process-wide state empty: request budgets (a 429 one test provokes never
    paces another), IAM tokens, rejected credentials and cached connections (a test's emulator is reset)."""
    testing.reset_process_state()
    yield
    testing.reset_process_state()


@pytest.fixture(autouse=True)
def _remove_written_dags() -> Iterator[None]:
    """DAG files a test wrote are removed after it: dag.test() parses the whole dags folder every time."""
    yield
    airflow_support.remove_written_dags()


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The metadata database for ``dag.test()`` (SQLite in the session's temporary AIRFLOW_HOME)."""
    from airflow.utils import db

    db.initdb()


# --- emulators ------------------------------------------------------------------------------------------


@pytest.fixture
def emulator(codecheck_emulator_clean: EmulatorServer) -> EmulatorServer:
    """The shared plain-HTTP emulator, reset for this test."""
    return codecheck_emulator_clean


@pytest.fixture
def emulator_with_t1(emulator: EmulatorServer) -> EmulatorServer:
    """The shared emulator, reset, with task ``t1`` (last scan succeeded, not running)."""
    emulator.add_task(task_id=TASK, initial_status=2, duration_s=30)
    return emulator


@pytest.fixture
def default_conn_emulator(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """The shared emulator, reset, with ``codecheck_default`` pointing at it (IAM password auth)."""
    monkeypatch.setenv(*testing.connection_env(testing.DEFAULT_CONN_ID, emulator.base_url))
    return emulator


@pytest.fixture(scope="session")
def leakcheck_emulator_session() -> Iterator[EmulatorServer]:
    # Imported here: the constants live with the transport tests, whose folder pytest puts on sys.path.
    import client_helpers as h

    from airflow_provider_codecheck.emulator.defaults import AccessKey
    from airflow_provider_codecheck.emulator.server import EmulatorServer

    access_keys = {h.SECRET_AK: AccessKey(h.SECRET_SK), h.TEMP_AK: AccessKey(h.TEMP_SK, h.SECURITY_TOKEN)}
    leakcheck = EmulatorServer(
        iam_user=h.SECRET_USER,
        iam_password=h.SECRET_PASSWORD,
        iam_domain=h.SECRET_DOMAIN,
        access_keys=access_keys,
    )
    with leakcheck:
        yield leakcheck


@pytest.fixture
def leakcheck_emulator(leakcheck_emulator_session: EmulatorServer) -> EmulatorServer:
    """An emulator that accepts only the distinctive credentials of ``client_helpers``; reset, with ``t1``."""
    leakcheck_emulator_session.reset()
    leakcheck_emulator_session.add_task(task_id=TASK, initial_status=2, duration_s=30)
    return leakcheck_emulator_session


@pytest.fixture(scope="module")
def manual_clock_emulator() -> Iterator[tuple[EmulatorServer, ManualClock]]:
    """``(server, clock)``: an emulator whose time only moves with ``clock.advance()`` (not reset)."""
    from airflow_provider_codecheck.emulator.server import EmulatorServer
    from airflow_provider_codecheck.emulator.state import ManualClock

    clock = ManualClock()
    with EmulatorServer(clock=clock) as server:
        yield server, clock


@pytest.fixture
def emulator_api(emulator: EmulatorServer) -> Iterator[Api]:
    """A requests client of the reset shared emulator, with a valid X-Auth-Token."""
    from emulator_helpers import Api  # tests/emulator, on sys.path for the tests there that use it

    client = Api(emulator, emulator.issue_token())
    yield client
    client.close()


@pytest.fixture
def manual_clock_api(
    manual_clock_emulator: tuple[EmulatorServer, ManualClock],
) -> Iterator[tuple[Api, ManualClock]]:
    """``(api, clock)``: ``emulator_api`` for ``manual_clock_emulator``, reset for this test."""
    from emulator_helpers import Api

    server, clock = manual_clock_emulator
    server.reset()
    client = Api(server, server.issue_token())
    yield client, clock
    client.close()


@pytest.fixture
def reliability_conn(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """``reliability_conn(auth_type="password", conn_id="codecheck_rel", **extra)``: point that connection
    at ``emulator`` (with its default credentials); returns the conn id."""

    def configure(
        auth_type: testing.AuthType = "password", conn_id: str = "codecheck_rel", **extra: Any
    ) -> str:
        monkeypatch.setenv(*testing.connection_env(conn_id, emulator.base_url, auth_type, **extra))
        return conn_id

    return configure


# --- reliability figures -------------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    """With ``$RELIABILITY_FIGURES`` set (``make reliability``), add the run's counts, runtime and machine to
    the figures file that ``scripts/reliability_report.py`` renders."""
    rh = sys.modules.get("reliability_helpers")  # imported by the reliability tests, if this run has any
    if rh is None or not os.environ.get("RELIABILITY_FIGURES"):
        return
    import platform
    from datetime import datetime

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
        date=datetime.now(UTC).strftime("%Y-%m-%d"),
    )


# --- start_from_trigger fallbacks ----------------------------------------------------------------------


FALLBACK_LINE = "start_from_trigger: this task runs in a worker because"


class _Lines(logging.Handler):
    """Records every log line, whichever way this Airflow routes task logs (stdlib on 2.11, structlog on 3.x)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: dict[int, logging.LogRecord] = {}  # by identity: a record may reach both loggers

    def emit(self, record: logging.LogRecord) -> None:
        self.records[id(record)] = record


@pytest.fixture
def fallback_lines(capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[[], int]]:
    """How many fallback lines were logged: from the captured output or, where Airflow's task logging has taken
    the output over (2.11 after an earlier dag.test()), from the ``airflow.task`` logger."""
    lines = _Lines()
    loggers = [logging.getLogger("airflow.task"), logging.getLogger()]
    for logger in loggers:
        logger.addHandler(lines)

    def count() -> int:
        output = capfd.readouterr()
        logged = sum(FALLBACK_LINE in record.getMessage() for record in lines.records.values())
        return max((output.out + output.err).count(FALLBACK_LINE), logged)

    yield count
    for logger in loggers:
        logger.removeHandler(lines)
