"""IAM ``POST /v3/auth/tokens`` with the password method (API reference §6): request check, token body."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow_provider_codecheck.emulator.defaults import EmulatorConfig, stable_id

IAM_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
DEFAULT_PROJECT = "cn-north-4"


class IamError(Exception):
    """Answered in IAM's own error shape, not CodeArts' ``error_code``/``error_msg``."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"code": status, "message": message, "title": title}}


def _bad_request(message: str) -> IamError:
    return IamError(400, "Bad Request", message)


WRONG_PASSWORD = IamError(401, "Unauthorized", "The username or password is wrong.")


def _dig(body: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def check_password_auth(body: Any, config: EmulatorConfig) -> dict[str, Any]:
    """Validate the request body; return its ``scope`` object (may be empty). Raises IamError."""
    identity = _dig(body, "auth", "identity")
    if not isinstance(identity, dict) or "password" not in (identity.get("methods") or []):
        raise _bad_request("The request body is invalid: auth.identity.methods must contain password.")
    user = _dig(identity, "password", "user")
    if not isinstance(user, dict):
        raise _bad_request("The request body is invalid: auth.identity.password.user is required.")
    domain = user.get("domain") or {}
    domain_ok = domain.get("name") == config.iam_domain or domain.get("id") == domain_id(config)
    if user.get("name") != config.iam_user or user.get("password") != config.iam_password or not domain_ok:
        raise WRONG_PASSWORD
    scope = _dig(body, "auth", "scope") or {}
    if not isinstance(scope, dict):
        raise _bad_request("The request body is invalid: auth.scope must be an object.")
    return scope


def domain_id(config: EmulatorConfig) -> str:
    return stable_id("domain", config.iam_domain)


def token_body(
    scope: dict[str, Any], config: EmulatorConfig, issued: datetime, lifetime_s: float, catalog: bool
) -> dict[str, Any]:
    domain = {"id": domain_id(config), "name": config.iam_domain}
    token: dict[str, Any] = {
        "expires_at": (issued + timedelta(seconds=lifetime_s)).strftime(IAM_TIME_FORMAT),
        "issued_at": issued.strftime(IAM_TIME_FORMAT),
        "methods": ["password"],
        "user": {
            "id": stable_id("user", config.iam_domain, config.iam_user),
            "name": config.iam_user,
            "password_expires_at": "",
            "domain": domain,
        },
        "roles": [],
    }
    project = scope.get("project")
    if isinstance(project, dict):
        name = project.get("name") or DEFAULT_PROJECT
        token["project"] = {
            "id": project.get("id") or stable_id("project", name),
            "name": name,
            "domain": domain,
        }
    elif isinstance(scope.get("domain"), dict):
        token["domain"] = domain
    if catalog:
        token["catalog"] = []
    return {"token": token}
