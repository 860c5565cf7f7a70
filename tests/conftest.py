"""Test session set-up: a throwaway AIRFLOW_HOME with SQLite, configured before anything imports Airflow."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="codecheck-airflow-home-"))
# dag.test() in Airflow 3 only runs DAGs found in the dags folder: the examples are copied there, and
# tests write their own DAG files beside them (tests/airflow/dag_helpers.py).
DAGS_FOLDER = AIRFLOW_HOME / "dags"
DAGS_FOLDER.mkdir()
for example in (ROOT / "example_dags").glob("*.py"):
    shutil.copy(example, DAGS_FOLDER)

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ.pop("AIRFLOW_CONN_CODECHECK_DEFAULT", None)



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


def _clear_process_state() -> None:
    from airflow_provider_codecheck.core import budgets, iam

    budgets.BUDGETS.clear()
    iam.TOKEN_CACHE.clear()
    iam.CREDENTIAL_MEMO.clear()
    hooks = sys.modules.get("airflow_provider_codecheck.hooks.codecheck")  # only if a test imported Airflow
    if hooks is not None:
        hooks.CONNECTION_CACHE.clear()


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Each test starts with the process-wide state empty: request budgets (a 429 one test provokes never
    paces another), IAM tokens, rejected credentials and cached connections (a test's emulator is reset)."""
    _clear_process_state()
    yield
    _clear_process_state()
