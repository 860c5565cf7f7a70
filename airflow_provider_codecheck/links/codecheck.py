"""Extra link from an Airflow task to the CodeArts Check task in the Huawei Cloud console."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseOperatorLink

CONSOLE_URL_XCOM_KEY = "console_url"


class CodeCheckTaskLink(BaseOperatorLink):
    """ "CodeArts Check task" button; the URL comes from the connection's ``console_url_template``."""

    name = "CodeArts Check task"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.providers.common.compat.sdk import XCom  # only the UI needs it: keep DAG parsing lean

        return XCom.get_value(key=CONSOLE_URL_XCOM_KEY, ti_key=ti_key) or ""
