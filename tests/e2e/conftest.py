"""Fixtures of the end-to-end tests: the full stack (session), its REST client, the emulator, headless Chromium.

The e2e tests start PostgreSQL, four Airflow processes, the emulator and Chromium, so a plain ``pytest`` (or
``make unit``) does not collect them: they run when the command line names ``tests/e2e`` (or a file or test
in it), e.g. ``pytest tests/e2e -k sensor``, or when ``CODECHECK_E2E=1`` is set. Every test here is marked
``e2e``. The modules run in the order of ``MODULE_ORDER`` (the connection form saves the connection the DAG
runs use; the event-driven scenario adds requests the others do not expect, so it runs last), whatever ``-k``
selects: each module's fixtures set up what its checks need by themselves.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stack import (
    CONN_ID,
    EXAMPLE_DAGS,
    AirflowApi,
    Emulator,
    RunningStack,
    Stack,
    connection_body,
    ensure_debian_packages,
    log,
    start_stack,
    wait_until,
)

HERE = Path(__file__).resolve().parent
OPT_IN_ENV = "CODECHECK_E2E"
MODULE_ORDER = (
    "test_e2e_stack.py",
    "test_e2e_connection_form.py",
    "test_e2e_example_dags.py",
    "test_e2e_triggerer_restart.py",
    "test_e2e_event_driven.py",
)

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


# --- collection: opt-in, marker, order --------------------------------------------------------------------


def _e2e_requested(config: pytest.Config) -> bool:
    if os.environ.get(OPT_IN_ENV) == "1":
        return True
    root = Path(config.invocation_params.dir)
    for arg in config.args:
        path = (root / arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave the e2e modules out unless asked for (``None``: let the other rules decide)."""
    if collection_path != HERE / "conftest.py" and not _e2e_requested(config):
        return True
    return None


def pytest_configure(config: pytest.Config) -> None:
    # make e2e shows the stack's progress live (log_cli at INFO); one line per REST call would drown it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config.addinivalue_line("markers", "e2e: full-stack test (PostgreSQL, Airflow processes, emulator)")
    config.addinivalue_line("markers", "scale: full-stack scale run, not part of make e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, int]:
        path = Path(str(item.path))
        if path != HERE and HERE not in path.parents:
            return (0, 0)
        name = path.name
        return (1, MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER))

    for item in items:
        if rank(item)[0]:
            item.add_marker(pytest.mark.e2e)
    items.sort(key=rank)  # stable: the tests of one module keep their order


# --- the stack --------------------------------------------------------------------------------------------


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def e2e_tmp(request: pytest.FixtureRequest) -> Iterator[Path]:
    """The run's temp folder: logs, AIRFLOW_HOME, PostgreSQL data, screenshots. Kept whole when a test
    failed; otherwise only the screenshots stay."""
    tmp = Path(tempfile.mkdtemp(prefix="codecheck-e2e-"))
    tmp.chmod(0o755)  # the postgres user must reach its data folder inside
    log(f"temp folder {tmp}")
    request.config.stash[TMP_KEY] = tmp
    yield tmp
    if request.session.testsfailed:
        return
    for path in tmp.iterdir():
        if path.suffix != ".png":
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()


TMP_KEY = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    tmp = config.stash.get(TMP_KEY, None)
    if tmp is None:
        return
    kept = "logs in " + str(tmp / "logs") if (tmp / "logs").exists() else "temp folder cleaned up"
    terminalreporter.write_line(f"e2e: {kept}")
    for shot in sorted(tmp.glob("*.png")):
        terminalreporter.write_line(f"e2e: screenshot {shot}")


@pytest.fixture(scope="session")
def airflow_stack(e2e_tmp: Path) -> Iterator[RunningStack]:
    """PostgreSQL, api-server, scheduler, dag-processor, one triggerer and the emulator, up and healthy, the
    REST client logged in. Everything is stopped by pid at the end of the session, also on SIGTERM."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    stack = Stack(e2e_tmp)
    try:
        ensure_debian_packages()
        yield start_stack(e2e_tmp, stack)
    finally:
        log("stopping everything this run started")
        stack.close()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def airflow_api(airflow_stack: RunningStack) -> AirflowApi:
    return airflow_stack.api


@pytest.fixture(scope="session")
def emulator(airflow_stack: RunningStack) -> Emulator:
    return airflow_stack.emulator


@pytest.fixture(scope="session")
def example_dags_parsed(airflow_api: AirflowApi) -> None:
    """The dag-processor has parsed the three example DAGs."""

    def parsed() -> bool:
        return all(
            airflow_api.http.get(f"/api/v2/dags/{dag_id}").status_code == 200 for dag_id in EXAMPLE_DAGS
        )

    wait_until("the example DAGs to be parsed", parsed, 120, 1)


@pytest.fixture(scope="session")
def codecheck_connection(airflow_api: AirflowApi, emulator: Emulator) -> str:
    """The connection the example DAGs use: the one the connection-form test saved through the UI when it ran
    first, else created through the REST API. Its id."""
    if airflow_api.http.get(f"/api/v2/connections/{CONN_ID}").status_code == 404:
        log(f"no {CONN_ID} connection (the UI test did not run or did not save it): creating it through REST")
        airflow_api.request("POST", "/connections", expect=(201,), json=connection_body(emulator))
    return CONN_ID


# --- the browser ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser(airflow_stack: RunningStack) -> Iterator[Any]:
    """Headless Chromium driven by Playwright: the system's Chromium (Debian package), no browser download."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError("chromium not found (make e2e installs the Debian package chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            yield chromium
        finally:
            chromium.close()
