"""The "CodeArts Check task" extra link: offered by the operator, registered with the provider, and pointing at
the console URL the run pushed (the connection's ``console_url_template`` filled in)."""

from __future__ import annotations

import pytest
from airflow_support import build_dag, xcom

from airflow_provider_codecheck import get_provider_info
from airflow_provider_codecheck.links.codecheck import CONSOLE_URL_XCOM_KEY, CodeCheckTaskLink
from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator
from airflow_provider_codecheck.testing import connection_env

PROJECT = "0123456789abcdef0123456789abcdef"


def test_the_operator_offers_the_link_and_the_provider_registers_it():
    operator = CodeCheckRunTaskOperator(task_id="scan", codecheck_task_id="t1")
    assert [link.name for link in operator.operator_extra_links] == ["CodeArts Check task"]
    assert isinstance(operator.operator_extra_links[0], CodeCheckTaskLink)
    assert get_provider_info()["extra-links"] == [
        f"{CodeCheckTaskLink.__module__}.{CodeCheckTaskLink.__qualname__}"
    ]


@pytest.mark.usefixtures("airflow_db")
def test_the_run_pushes_the_console_url_the_link_opens(emulator, monkeypatch):
    emulator.add_task(task_id="t1", duration_s=0.5, final_status=2)
    template = "https://console.example/{region}/{project_id}/{task_id}"
    conn = connection_env(
        "codecheck_default", emulator.base_url, project_id=PROJECT, console_url_template=template
    )
    monkeypatch.setenv(*conn)
    dag = build_dag("link_dag", {"scan": ("CodeCheckRunTaskOperator", {"codecheck_task_id": "t1"})})
    dag_run = dag.test()
    assert xcom(dag_run, "scan", CONSOLE_URL_XCOM_KEY) == f"https://console.example/None/{PROJECT}/t1"
