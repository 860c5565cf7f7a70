"""The connection form, declared once: Airflow >= 3.2 reads it from provider info, older ones via the hook."""

from __future__ import annotations

from typing import Any

from airflow_provider_codecheck.core.settings import AUTH_TYPES, DEFAULT_TIMEOUT

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["port", "schema"],
    "relabeling": {
        "host": "Endpoint URL",
        "login": "IAM user name or Access Key (AK)",
        "password": "IAM password, Secret Key (SK) or X-Auth-Token",
    },
    "placeholders": {
        "host": "https://codearts-check.cn-north-4.myhuaweicloud.com (empty: derived from region)",
        "login": "IAM user (auth type password) or AK (auth type aksk); empty for token",
        "password": "the secret that goes with the auth type",
        "extra": '{"auth_type": "password", "region": "cn-north-4", "domain_name": "my-account"}',
    },
}

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "auth_type": {
        "label": "Auth type",
        "description": "token: X-Auth-Token in the password field; password: IAM user + password; "
        "aksk: AK in login, SK in password.",
        "schema": {"type": "string", "enum": list(AUTH_TYPES), "default": "password"},
    },
    "region": {
        "label": "Region",
        "description": "Region id, e.g. cn-north-4; gives the endpoint and IAM URLs when they are empty.",
        "schema": {"type": ["string", "null"]},
    },
    "domain_name": {
        "label": "Account (domain) name",
        "description": "The Huawei Cloud account that owns the IAM user (auth type password).",
        "schema": {"type": ["string", "null"]},
    },
    "iam_project": {
        "label": "IAM project scope",
        "description": "IAM project name the token is scoped to; defaults to the region.",
        "schema": {"type": ["string", "null"]},
    },
    "iam_endpoint": {
        "label": "IAM endpoint URL",
        "description": "Defaults to https://iam.<region>.myhuaweicloud.com.",
        "schema": {"type": ["string", "null"]},
    },
    "iam_project_id": {
        "label": "IAM project id (AK/SK)",
        "description": "Sent as X-Project-Id with AK/SK signing.",
        "schema": {"type": ["string", "null"]},
    },
    "project_id": {
        "label": "CodeArts project id",
        "description": "32-character CodeArts project UUID; used for console links.",
        "schema": {"type": ["string", "null"]},
    },
    "security_token": {
        "label": "Security token",
        "description": "For temporary AK/SK credentials (STS); sent as X-Security-Token.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "verify": {
        "label": "Verify TLS",
        "description": "Verify the server certificate (keep on in production).",
        "schema": {"type": "boolean", "default": True},
    },
    "ca_bundle": {
        "label": "CA bundle path",
        "description": "PEM file of a private CA to trust, e.g. the emulator's with --tls.",
        "schema": {"type": ["string", "null"]},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Per-request timeout.",
        "schema": {"type": ["number", "null"], "default": DEFAULT_TIMEOUT, "minimum": 1, "maximum": 600},
    },
    "max_requests_per_second": {
        "label": "Max requests per second",
        "description": "Optional cap on this connection's calls per process (endpoint and identity); "
        "empty: no cap, the rate is learned from the service's 429 answers.",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "console_url_template": {
        "label": "Console URL template",
        "description": "Link to a task in the console; placeholders {region}, {project_id}, {task_id}.",
        "schema": {"type": ["string", "null"]},
    },
}

SECRET_FIELDS = frozenset(
    name for name, spec in CONN_FIELDS.items() if spec["schema"].get("format") == "password"
)


def legacy_form_widgets() -> dict[str, Any]:
    """The same fields as wtforms widgets, for Airflow < 3.2 (imported only by the UI)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, PasswordField, StringField

    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        label = lazy_gettext(spec["label"])
        if name in SECRET_FIELDS:
            widgets[name] = PasswordField(
                label, widget=BS3PasswordFieldWidget(), description=spec["description"]
            )
        elif spec["schema"]["type"] == "boolean":
            widgets[name] = BooleanField(label, default=spec["schema"].get("default", False))
        else:
            widgets[name] = StringField(label, widget=BS3TextFieldWidget(), description=spec["description"])
    return widgets
