"""Fixtures for tests that run real Airflow (``dag.test()`` on SQLite) against the emulator."""

from __future__ import annotations

from typing import Any

import pytest
from dag_helpers import connection_json

from airflow_provider_codecheck.core import iam


@pytest.fixture(scope="session")
def airflow_db() -> None:
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def emulator(codecheck_emulator_clean: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A reset emulator, with ``codecheck_default`` pointing at it (IAM password auth)."""
    monkeypatch.setenv("AIRFLOW_CONN_CODECHECK_DEFAULT", connection_json(codecheck_emulator_clean.base_url))
    iam.TOKEN_CACHE.clear()
    return codecheck_emulator_clean
