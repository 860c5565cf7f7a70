"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

CONN_TYPE = "huaweicloud_codecheck"
DEFAULT_CONN_ID = "codecheck_default"
HOOK_CLASS = "airflow_provider_codecheck.hooks.codecheck.CodeCheckHook"


def get_provider_info() -> dict[str, Any]:
    from airflow_provider_codecheck import __version__
    from airflow_provider_codecheck.connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR

    return {
        "package-name": "airflow-provider-codecheck",
        "name": "Huawei Cloud CodeArts Check",
        "description": "Run and wait for Huawei Cloud CodeArts Check scans from Airflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Huawei Cloud CodeArts Check",
                "external-doc-url": "https://support.huaweicloud.com/intl/en-us/codecheck/",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Huawei Cloud CodeArts Check",
                "python-modules": ["airflow_provider_codecheck.hooks.codecheck"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Huawei Cloud CodeArts Check",
                "python-modules": [
                    "airflow_provider_codecheck.triggers.codecheck",
                    "airflow_provider_codecheck.triggers.events",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Huawei Cloud CodeArts Check",
                "python-modules": ["airflow_provider_codecheck.sensors.codecheck"],
            }
        ],
        "operators": [
            {
                "integration-name": "Huawei Cloud CodeArts Check",
                "python-modules": ["airflow_provider_codecheck.operators.codecheck"],
            }
        ],
        "extra-links": ["airflow_provider_codecheck.links.codecheck.CodeCheckTaskLink"],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": HOOK_CLASS,
                "hook-name": "Huawei Cloud CodeArts Check",
                "default-conn-name": DEFAULT_CONN_ID,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
    }
