"""pytest fixtures for DAG tests against the CodeArts Check emulator. Opt-in: add to your root ``conftest.py``::

    pytest_plugins = ["airflow_provider_codecheck.emulator.pytest_plugin"]

(or run ``pytest -p airflow_provider_codecheck.emulator.pytest_plugin``).

* ``codecheck_emulator`` (session): the emulator (``EmulatorServer``) on 127.0.0.1 over plain HTTP, random
  port, in a thread of the test process. Not reset between tests.
* ``codecheck_emulator_clean`` (function): the same emulator, reset before the test.
* ``codecheck_emulator_tls`` (session): a separate HTTPS emulator; its CA file is ``.ca_file``.
* ``codecheck_connection`` (function): ``codecheck_connection(auth_type="password", conn_id="codecheck_default",
  **kwargs)`` points an Airflow connection (an ``AIRFLOW_CONN_*`` variable, for this test only) at the clean
  emulator with its default credentials and returns the conn id; ``kwargs`` go to
  ``airflow_provider_codecheck.testing.connection``. It also empties the provider's process-wide caches.

::

    def test_my_dag(codecheck_emulator_clean, codecheck_connection):
        codecheck_emulator_clean.add_task(task_id="t1", duration_s=1, final_status=2)
        codecheck_connection("password")
        assert my_dag.test().state == "success"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_codecheck import testing

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


@pytest.fixture
def codecheck_connection(
    codecheck_emulator_clean: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., str]]:
    def point_at_emulator(
        auth_type: testing.AuthType = "password", conn_id: str = testing.DEFAULT_CONN_ID, **kwargs: Any
    ) -> str:
        if auth_type == "token" and "token" not in kwargs:
            kwargs["token"] = codecheck_emulator_clean.issue_token()
        monkeypatch.setenv(
            *testing.connection_env(conn_id, codecheck_emulator_clean.base_url, auth_type, **kwargs)
        )
        testing.reset_process_state()
        return conn_id

    testing.reset_process_state()
    yield point_at_emulator
    testing.reset_process_state()
