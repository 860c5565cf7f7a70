"""Connection settings: what an Airflow connection means, validated, with secrets kept out of reprs."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow_provider_codecheck.core.errors import ConnectionConfigError

AuthType = Literal["token", "password", "aksk"]
AUTH_TYPES: tuple[AuthType, ...] = ("token", "password", "aksk")
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONSOLE_URL = (
    "https://devcloud.{region}.huaweicloud.com/codecheck/project/{project_id}/codecheck/task/{task_id}/detail"
)
_REGION_RE = re.compile(r"^[a-z]{2,}-[a-z]+-\d+$")


def service_endpoint(region: str) -> str:
    return f"https://codearts-check.{region}.myhuaweicloud.com"


def iam_endpoint(region: str | None) -> str:
    return f"https://iam.{region}.myhuaweicloud.com" if region else "https://iam.myhuaweicloud.com"


@dataclass(frozen=True)
class TokenAuth:
    """A static ``X-Auth-Token`` (the caller refreshes it; a 401 is final)."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class PasswordAuth:
    """IAM user password: a token is fetched from IAM, cached per process and refreshed."""

    domain: str
    user: str
    password: str = field(repr=False)
    project: str | None
    """IAM project name to scope the token to (usually the region); None scopes it to the domain."""


@dataclass(frozen=True)
class AkSkAuth:
    """Access key / secret key request signing (SDK-HMAC-SHA256)."""

    access_key: str
    secret_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    """Set for temporary credentials (STS); sent as ``X-Security-Token``."""
    project_id: str | None = None
    """IAM project id, sent as ``X-Project-Id``."""


Auth = TokenAuth | PasswordAuth | AkSkAuth


@dataclass(frozen=True)
class ConnectionSettings:
    endpoint: str
    iam_endpoint: str
    auth: Auth
    region: str | None = None
    verify: bool | str = True
    """True, False, or a CA bundle path."""
    timeout: float = DEFAULT_TIMEOUT
    proxy: str | None = field(default=None, repr=False)
    """Proxy URL; may embed credentials, so it stays out of reprs."""
    project_id: str | None = None
    """CodeArts project UUID (used for console links)."""
    console_url_template: str = DEFAULT_CONSOLE_URL
    max_requests_per_second: float | None = None
    """Explicit cap of the request budget (core/budget.py); None: learned from 429s only."""

    def transport_key(self) -> tuple[Any, ...]:
        """What two clients must share to reuse one HTTP connection pool (no secrets in it)."""
        return (self.verify, self.proxy, self.timeout)


# Characters an HTTP stack rejects in a header or rewrites in a URL (control characters incl. CR/LF, DEL).
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# In a URL additionally: whitespace and a backslash (both rewritten by URL parsers), a fragment.
_URL_BAD_RE = re.compile(r"[\x00-\x20\x7f\\#]")


def _no_control(value: str | None, name: str) -> None:
    """Reject control characters (CR/LF, NUL, DEL...) in a field sent in a header; never echo the value."""
    if value is not None and _CONTROL_RE.search(value):
        raise ConnectionConfigError(
            f"connection field {name!r} contains a control character (CR, LF, tab, NUL...); remove it"
        )


def _clean_url(value: str, name: str, allow_credentials: bool = False, port: int | None = None) -> str:
    # Only credentials in a URL are secret (a proxy's, typically): never echo a value with "@".
    shown = "a value with credentials" if "@" in value else repr(value)
    url = value.strip().rstrip("/")
    if _URL_BAD_RE.search(url):
        raise ConnectionConfigError(
            f"connection field {name!r} contains a control character, whitespace, a backslash or '#': {shown}"
        )
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    try:
        url_port = parts.port
    except ValueError:
        raise ConnectionConfigError(f"connection field {name!r} has an invalid port: {shown}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectionConfigError(f"connection field {name!r} must be an http(s) URL, got {shown}")
    if parts.path not in ("", "/") or parts.query:
        raise ConnectionConfigError(f"connection field {name!r} must hold only scheme://host[:port]")
    if (parts.username is not None or parts.password is not None) and not allow_credentials:
        raise ConnectionConfigError(
            f"connection field {name!r} must not embed credentials (user:password@); use login and password"
        )
    if "%" in parts.hostname:
        raise ConnectionConfigError(f"connection field {name!r} has a percent-encoded host: {shown}")
    labels = parts.hostname.split(".")
    if any(label in ("", "..") for label in labels[:-1]) or parts.hostname in (".", ".."):
        raise ConnectionConfigError(
            f"connection field {name!r} has an empty or dot segment in its host: {shown}"
        )
    if port is not None:
        if not 0 < port < 65536:
            raise ConnectionConfigError(f"connection field 'port' must be in 1-65535, got {port}")
        if url_port is not None and url_port != port:
            raise ConnectionConfigError(
                f"connection field {name!r} has port {url_port} but the port field says {port}; keep one"
            )
        if url_port is None:
            netloc = parts.netloc
            host_part = f"[{parts.hostname}]" if ":" in parts.hostname else netloc
            url = f"{parts.scheme}://{host_part}:{port}"
    return url


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConnectionConfigError(f"connection extra {name!r} must be true or false, got {value!r}")


_LEGACY_PREFIX = "extra__huaweicloud_codecheck__"


def _normalize_extra(extra: dict[str, Any]) -> dict[str, Any]:
    # Airflow < 3 forms store extras as "extra__<conn_type>__<name>"; a plain key wins over a prefixed one.
    prefixed = {k[len(_LEGACY_PREFIX) :]: v for k, v in extra.items() if k.startswith(_LEGACY_PREFIX)}
    plain = {k: v for k, v in extra.items() if not k.startswith(_LEGACY_PREFIX) and v not in (None, "")}
    return {**prefixed, **plain}


def _extra_str(extra: dict[str, Any], name: str) -> str | None:
    value = extra.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _required(value: str | None, what: str, auth_type: str) -> str:
    if not value:
        raise ConnectionConfigError(f"auth_type {auth_type!r} needs {what}, which is empty")
    return value


def settings_from_connection(
    host: str | None,
    login: str | None,
    password: str | None,
    extra: dict[str, Any],
    port: int | None = None,
) -> ConnectionSettings:
    """Validate an Airflow connection's fields; errors name the field that is wrong, never its secret.

    Anything an HTTP stack would reject or silently rewrite is refused here, at read time: control characters
    (CR/LF...) in any field sent in a header, URLs with whitespace, backslashes, fragments, paths (dot
    segments included), embedded ``user:password@`` in the host, an invalid port; a ``ca_bundle`` that is not
    a file. ``port`` (Airflow's ``conn.port``) is added to the host URL.
    """
    extra = _normalize_extra(extra)
    for key, value in extra.items():
        if isinstance(value, str):
            _no_control(value, f"extra {key}")
    _no_control(login, "login")
    if port is not None and not host:
        raise ConnectionConfigError("connection field 'port' is set but the host is empty")
    auth_type = (_extra_str(extra, "auth_type") or "").lower()
    if auth_type not in AUTH_TYPES:
        raise ConnectionConfigError(
            f"connection extra 'auth_type' must be one of {', '.join(AUTH_TYPES)}, got {auth_type or None!r}"
        )
    region = _extra_str(extra, "region")
    if region and not _REGION_RE.match(region):
        raise ConnectionConfigError(f"connection extra 'region' is not a region id: {region!r}")
    if host:
        endpoint = _clean_url(host, "host (endpoint)", port=port)
    elif region:
        endpoint = service_endpoint(region)
    else:
        raise ConnectionConfigError("set the connection host (endpoint URL) or the extra 'region'")
    iam_extra = _extra_str(extra, "iam_endpoint")
    iam = _clean_url(iam_extra, "iam_endpoint") if iam_extra else iam_endpoint(region)

    auth: Auth
    if auth_type != "password":  # the IAM password travels in a JSON body; a token, AK and SK in headers/HMAC
        _no_control(password, "password")
    if auth_type == "token":
        auth = TokenAuth(_required(password, "the X-Auth-Token in the password field", auth_type))
    elif auth_type == "password":
        auth = PasswordAuth(
            domain=_required(
                _extra_str(extra, "domain_name"), "extra 'domain_name' (account name)", auth_type
            ),
            user=_required(login, "the IAM user name in the login field", auth_type),
            password=_required(password, "the IAM password in the password field", auth_type),
            project=_extra_str(extra, "iam_project") or region,
        )
    else:
        auth = AkSkAuth(
            access_key=_required(login, "the access key (AK) in the login field", auth_type),
            secret_key=_required(password, "the secret key (SK) in the password field", auth_type),
            security_token=_extra_str(extra, "security_token"),
            project_id=_extra_str(extra, "iam_project_id"),
        )

    ca_bundle = _extra_str(extra, "ca_bundle")
    verify: bool | str = _as_bool(extra.get("verify", True), "verify")
    if ca_bundle:
        if not os.path.isfile(ca_bundle):
            raise ConnectionConfigError(f"connection extra 'ca_bundle' is not a readable file: {ca_bundle!r}")
        verify = ca_bundle
    timeout_raw = extra.get("timeout")
    if timeout_raw in (None, ""):  # not "or": an explicit 0 must be rejected, not replaced by the default
        timeout_raw = DEFAULT_TIMEOUT
    try:
        timeout = float(timeout_raw)
    except (TypeError, ValueError):
        raise ConnectionConfigError(
            f"connection extra 'timeout' must be seconds, got {timeout_raw!r}"
        ) from None
    if not 0 < timeout <= 600:
        raise ConnectionConfigError(f"connection extra 'timeout' must be in (0, 600] seconds, got {timeout}")
    max_rps = _max_requests_per_second(extra.get("max_requests_per_second"))
    proxy = _extra_str(extra, "proxy")
    if proxy:
        proxy = _clean_url(proxy, "proxy", allow_credentials=True)
    return ConnectionSettings(
        endpoint=endpoint,
        iam_endpoint=iam,
        auth=auth,
        region=region,
        verify=verify,
        timeout=timeout,
        proxy=proxy,
        project_id=_extra_str(extra, "project_id"),
        console_url_template=_extra_str(extra, "console_url_template") or DEFAULT_CONSOLE_URL,
        max_requests_per_second=max_rps,
    )


def _max_requests_per_second(raw: Any) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        if isinstance(raw, bool):
            raise TypeError
        value = float(raw)
    except (TypeError, ValueError):
        raise ConnectionConfigError(
            f"connection extra 'max_requests_per_second' must be a number of requests per second, got {raw!r}"
        ) from None
    if not (math.isfinite(value) and 0 < value <= 10000):
        raise ConnectionConfigError(
            f"connection extra 'max_requests_per_second' must be in (0, 10000], got {raw!r}"
        )
    return value


def console_url(settings: ConnectionSettings, task_id: str) -> str | None:
    """Render the console link for a task; None when the template needs a value the connection lacks."""
    values = {"region": settings.region or "", "project_id": settings.project_id or "", "task_id": task_id}
    try:
        url = settings.console_url_template.format(**values)
    except (KeyError, IndexError, ValueError):
        return None
    return None if "//" in url.split("://", 1)[-1] else url
