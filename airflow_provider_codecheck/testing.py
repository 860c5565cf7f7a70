"""Test support for DAG authors (and this project's own tests, benchmarks and demo).

Everything needed to test a DAG that uses this provider without a Huawei Cloud account:

* **the emulator** of CodeArts Check and IAM — in a child process with :func:`spawn_emulator`, or in a
  thread of the test process with the pytest fixtures of :mod:`airflow_provider_codecheck.emulator.pytest_plugin`
  (opt-in: add ``pytest_plugins = ["airflow_provider_codecheck.emulator.pytest_plugin"]`` to your root
  ``conftest.py``);
* :class:`EmulatorAdmin`, a client of its admin API (``/_emulator/*``): create scans, inject faults, read
  counters;
* **connection builders** for every auth mode — :func:`connection` (the fields), :func:`connection_json`,
  :func:`connection_uri` and :func:`connection_env` (``("AIRFLOW_CONN_<ID>", value)``) — filled with the
  emulator's default credentials unless you pass your own;
* **the fault catalogue**: every fault kind the emulator can inject, grouped by what a wait does about it
  (:data:`RETRIED_FAULTS`, :data:`PERMANENT_FAULTS`, ...), and :func:`fault` to write a fault spec.

A DAG test, end to end::

    from airflow_provider_codecheck import testing

    def test_my_dag(monkeypatch):
        with testing.spawn_emulator() as emulator:
            emulator.admin.add_task(task_id="t1", duration_s=1, final_status=2)
            monkeypatch.setenv(*testing.connection_env("codecheck_default", emulator.base_url))
            dag_run = my_dag.test()
        assert dag_run.state == "success"

Importing this module is cheap: the standard library only (no pytest, no aiohttp, no Airflow).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode, urlsplit

from airflow_provider_codecheck.emulator import defaults
from airflow_provider_codecheck.emulator.faults import AFTER_KINDS, KINDS, TRANSIENT_KINDS

if TYPE_CHECKING:
    from airflow_provider_codecheck.core.settings import ConnectionSettings

__all__ = [
    "ACCESS_KEY",
    "AFTER_FAULTS",
    "ALL_FAULTS",
    "CONN_TYPE",
    "DEFAULT_CONN_ID",
    "IAM_DOMAIN",
    "IAM_PASSWORD",
    "IAM_USER",
    "OTHER_FAULTS",
    "PERMANENT_FAULTS",
    "RETRIED_FAULTS",
    "SECRET_KEY",
    "TOKEN_FAULTS",
    "AuthType",
    "EmulatorAdmin",
    "EmulatorAdminError",
    "EmulatorProcess",
    "conn_env_var",
    "connection",
    "connection_env",
    "connection_json",
    "connection_settings",
    "connection_uri",
    "fault",
    "reset_process_state",
    "route_requests",
    "spawn_emulator",
]

AuthType = Literal["token", "password", "aksk"]

CONN_TYPE = "huaweicloud_codecheck"
DEFAULT_CONN_ID = "codecheck_default"

# The emulator's default credentials (what `python -m airflow_provider_codecheck.emulator` accepts).
IAM_USER = defaults.IAM_USER
IAM_PASSWORD = defaults.IAM_PASSWORD
IAM_DOMAIN = defaults.IAM_DOMAIN
ACCESS_KEY = defaults.ACCESS_KEY
SECRET_KEY = defaults.SECRET_KEY


# --- the fault catalogue -----------------------------------------------------------------------------------

ALL_FAULTS: frozenset[str] = KINDS
"""Every fault kind the emulator knows (``POST /_emulator/faults``, or a task's own ``faults``)."""

TOKEN_FAULTS: tuple[str, ...] = ("token_expired", "token_rejected")
"""A rejected X-Auth-Token: with IAM password auth one new token is fetched and the call goes on."""

OTHER_FAULTS: tuple[str, ...] = ("running_200",)
"""``running_200``: a ``run`` call answered "a scan is already running" (the operator attaches to it)."""

RETRIED_FAULTS: tuple[str, ...] = tuple(
    sorted(TRANSIENT_KINDS - AFTER_KINDS - set(TOKEN_FAULTS) - set(OTHER_FAULTS))
)
"""Kinds that replace an answer with a transient failure: a wait retries and goes on (``slow`` needs a
connection ``timeout`` below the fault's ``delay_s`` to be a failure at all)."""

PERMANENT_FAULTS: Mapping[str, str] = {
    "forbidden_403": "APIGW.0302",
    "not_found_404": "CC.00000404",
    "no_permission_200": "CC.00050010",
    "project_missing_200": "CC.00050013",
}
"""Kinds that end a wait at once, with the ``error_code`` the failure reports."""

AFTER_FAULTS: frozenset[str] = AFTER_KINDS
"""Kinds that perform the operation (a ``run`` starts the scan) and then lose or change its answer."""


def fault(
    kind: str,
    *,
    count: int | None = None,
    probability: float | None = None,
    routes: Sequence[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """A fault spec: ``kind`` on the next ``count`` matching requests, or on each with ``probability``.

    ``routes`` (default: every CodeArts route, or the one the kind is about) are drawn from ``progress``,
    ``run``, ``stop``, ``defects_summary``, ``defects_statistic``, ``checkrecord`` and ``iam``. ``options`` are
    the kind's own (``retry_after``, ``delay_s``, ``code``, ...; see the emulator's README).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(KINDS)}")
    if (count is None) == (probability is None):
        raise ValueError("give exactly one of count or probability")
    spec: dict[str, Any] = {"kind": kind, **options}
    spec.update({"count": count} if count is not None else {"probability": probability})
    if routes is not None:
        spec["routes"] = list(routes)
    return spec


def route_requests(stats: Mapping[str, Any], route: str, status: int | str | None = None) -> int:
    """Requests the emulator answered (or dropped) on ``route`` (``progress``, ``run``, ``iam``, ...), from a
    ``stats()`` snapshot; with ``status`` only those answered with that HTTP status."""
    total = 0
    for key, count in stats["requests"].items():
        key_route, _, key_status = key.partition(" ")
        if key_route == route and (status is None or key_status == str(status)):
            total += count
    return int(total)


# --- connections -------------------------------------------------------------------------------------------


def conn_env_var(conn_id: str = DEFAULT_CONN_ID) -> str:
    """The environment variable Airflow reads connection ``conn_id`` from."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def connection(
    base_url: str,
    auth_type: AuthType = "password",
    *,
    login: str | None = None,
    password: str | None = None,
    token: str | None = None,
    ca_file: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The fields of an Airflow connection to the service at ``base_url`` (``host`` and ``iam_endpoint``).

    * ``password``: IAM user ``login``/``password`` (default: the emulator's), extra ``domain_name`` (default:
      the emulator's domain);
    * ``aksk``: access key ``login``, secret key ``password`` (default: the emulator's pair);
    * ``token``: the X-Auth-Token in ``token`` (or ``password``) — e.g. ``EmulatorAdmin.issue_token()``.

    ``ca_file`` sets extra ``ca_bundle`` (an HTTPS emulator's CA); ``extra`` adds or overrides extras
    (``timeout``, ``region``, ``max_requests_per_second``, ...; ``None`` values are left out).
    """
    fields: dict[str, Any] = {"auth_type": auth_type, "iam_endpoint": base_url}
    if auth_type == "password":
        fields["domain_name"] = IAM_DOMAIN
        login = IAM_USER if login is None else login
        password = IAM_PASSWORD if password is None else password
    elif auth_type == "aksk":
        login = ACCESS_KEY if login is None else login
        password = SECRET_KEY if password is None else password
    elif auth_type == "token":
        password = token if token is not None else password
        if password is None:
            raise ValueError("auth type 'token' needs token=... (e.g. EmulatorAdmin.issue_token())")
    else:
        raise ValueError(f"auth_type must be token, password or aksk, got {auth_type!r}")
    if ca_file:
        fields["ca_bundle"] = ca_file
    fields.update(extra)
    return {
        "conn_type": CONN_TYPE,
        "host": base_url,
        "login": login,
        "password": password,
        "extra": {key: value for key, value in fields.items() if value is not None},
    }


def connection_json(base_url: str, auth_type: AuthType = "password", **kwargs: Any) -> str:
    """:func:`connection` as the JSON an ``AIRFLOW_CONN_<ID>`` variable (or a secrets backend) holds."""
    return json.dumps(connection(base_url, auth_type, **kwargs))


def connection_uri(base_url: str, auth_type: AuthType = "password", **kwargs: Any) -> str:
    """:func:`connection` as an Airflow connection URI (the format ``Connection.get_uri()`` writes).

    The host's scheme is kept (``huaweicloud-codecheck://http://user:pw@127.0.0.1:8080/?auth_type=...``, the
    port goes into Airflow's port field); extras whose values are not all strings, numbers or booleans are
    sent as one ``__extra__`` JSON parameter, as Airflow does.
    """
    fields = connection(base_url, auth_type, **kwargs)
    parts = urlsplit(fields["host"])
    uri = CONN_TYPE.replace("_", "-") + "://" + (f"{parts.scheme}://" if parts.scheme else "")
    login, password = fields["login"], fields["password"]
    if login is not None or password is not None:
        uri += (
            quote(login or "", safe="") + ("" if password is None else ":" + quote(password, safe="")) + "@"
        )
    uri += quote(parts.hostname or "", safe="") + (f":{parts.port}" if parts.port else "")
    extra: dict[str, Any] = fields["extra"]
    if all(isinstance(value, (str, int, float)) for value in extra.values()):
        # bool is an int: written as true/false, which the connection's settings parser reads back.
        query = urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in extra.items()})
    else:
        query = urlencode({"__extra__": json.dumps(extra)})
    return f"{uri}/?{query}"


def connection_env(
    conn_id: str = DEFAULT_CONN_ID,
    base_url: str = "",
    auth_type: AuthType = "password",
    *,
    uri: bool = False,
    **kwargs: Any,
) -> tuple[str, str]:
    """``("AIRFLOW_CONN_<CONN_ID>", value)``: connection ``conn_id`` pointing at ``base_url`` (JSON, or a URI
    with ``uri=True``), for ``monkeypatch.setenv(*connection_env(...))`` or ``os.environ.update([...])``."""
    if not base_url:
        raise ValueError("base_url is required (the emulator's base_url)")
    build = connection_uri if uri else connection_json
    return conn_env_var(conn_id), build(base_url, auth_type, **kwargs)


def connection_settings(base_url: str, auth_type: AuthType = "password", **kwargs: Any) -> ConnectionSettings:
    """:func:`connection` read the way the hook reads it: the validated settings the clients take."""
    from airflow_provider_codecheck.core.settings import settings_from_connection

    fields = connection(base_url, auth_type, **kwargs)
    return settings_from_connection(fields["host"], fields["login"], fields["password"], fields["extra"])


# --- the admin API ------------------------------------------------------------------------------------------


class EmulatorAdminError(RuntimeError):
    """The admin API refused a call (HTTP 4xx: a bad spec, an unknown task, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"emulator admin API: HTTP {status}: {message}")
        self.status = status


class EmulatorAdmin:
    """Blocking client of the emulator's admin API (``/_emulator/*``, no authentication).

    The method names are those of the in-thread ``EmulatorServer``, so a test can use either. Each call is
    one HTTP request (counted in ``stats()["connections"]`` like any other).
    """

    def __init__(self, base_url: str, ca_file: str | None = None, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.ca_file = ca_file
        self.timeout = timeout
        self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def __repr__(self) -> str:
        return f"EmulatorAdmin({self.base_url!r})"

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """``method`` ``/_emulator/<path>`` with a JSON body; the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/_emulator/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("error_msg", err.reason)
            except ValueError:
                message = err.reason
            raise EmulatorAdminError(err.code, str(message)) from None

    def add_task(self, **spec: Any) -> dict[str, Any]:
        """Create or replace a task: ``task_id``, ``duration_s``, ``final_status`` (1 failed, 2 success,
        3 stopped), ``running``, ``lag_s``, ``initial_status``, ``defects``, ``faults``; returns it."""
        task: dict[str, Any] = self.request("POST", "tasks", spec)
        return task

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        """The task (status, ``last_exec_id``, ``runs``, executions), or None if there is none."""
        try:
            task: dict[str, Any] = self.request("GET", f"tasks/{quote(task_id, safe='')}")
        except EmulatorAdminError as err:
            if err.status == 404:
                return None
            raise
        return task

    def commit(self, task_id: str, **spec: Any) -> str:
        """Start a scan "from outside" (as a commit would; no run call); returns its exec id."""
        return str(self.request("POST", f"tasks/{quote(task_id, safe='')}/commit", spec)["exec_id"])

    def set_faults(self, faults: Sequence[Mapping[str, Any]], seed: int | None = None) -> None:
        """Replace the global fault plan (see :func:`fault`); ``[]`` clears it."""
        self.request("POST", "faults", {"faults": list(faults), "seed": seed})

    def reset(self) -> None:
        """Forget tasks, faults, tokens, revocations, AK locks, quota and counters."""
        self.request("POST", "reset", {})

    def stats(self) -> dict[str, Any]:
        """Counters: ``requests`` by "route status", ``iam_tokens_issued``, ``connections``, ``faults_injected``..."""
        stats: dict[str, Any] = self.request("GET", "stats")
        return stats

    def issue_token(self, lifetime_s: float | None = None) -> str:
        """A valid X-Auth-Token (for auth type ``token``)."""
        return str(self.request("POST", "tokens", {"lifetime_s": lifetime_s})["token"])

    def expire_tokens(self) -> None:
        """Expire every token issued so far."""
        self.request("POST", "expire-tokens", {})

    def revoke_tokens(self, tokens: Sequence[str] | None = None, code: str = "APIGW.0301") -> int:
        """Reject these tokens (None: all issued so far) with a 401 ``code``; returns how many."""
        body = {"code": code, **({} if tokens is None else {"tokens": list(tokens)})}
        return int(self.request("POST", "revoke-tokens", body)["revoked"])

    def set_quota(self, rate: float | None = None, **options: Any) -> dict[str, Any]:
        """A token-bucket quota of ``rate`` requests per second answering 429 ``APIGW.0308`` (None: off);
        ``options``: ``burst``, ``scope`` ("api": a bucket per route), ``retry_after_form``. Returns it."""
        quota: dict[str, Any] = self.request("POST", "quota", {"rate": rate, **options})
        return quota

    def set_shape(self, null_fields: str = "null") -> None:
        """``"absent"``: leave fields without a value out of replies instead of sending ``null``."""
        self.request("POST", "shape", {"null_fields": null_fields})

    def health(self) -> bool:
        try:
            return bool(self.request("GET", "health").get("status") == "ok")
        except (OSError, EmulatorAdminError):
            return False


# --- the emulator in a child process --------------------------------------------------------------------


@dataclass
class EmulatorProcess:
    """A running ``python -m airflow_provider_codecheck.emulator``; a context manager that stops it."""

    process: subprocess.Popen[str]
    base_url: str
    ca_file: str | None = None
    admin: EmulatorAdmin = field(init=False)

    def __post_init__(self) -> None:
        self.admin = EmulatorAdmin(self.base_url, self.ca_file)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the emulator exits 0), SIGKILL after ``timeout``; returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def spawn_emulator(
    *,
    tls: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
    args: Sequence[str] = (),
    command_prefix: Sequence[str] = (),
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    stderr: IO[Any] | int | None = None,
    preexec_fn: Callable[[], Any] | None = None,
    startup_timeout: float = 30.0,
) -> EmulatorProcess:
    """Start the emulator in a child process and return once it listens (its first stdout line).

    ``tls`` serves HTTPS with a generated CA (``.ca_file``); ``port=0`` picks a free port; ``args`` are
    more command-line options (``--auto-create``, ``--seed 7``, ``--iam-password ...``: see
    ``python -m airflow_provider_codecheck.emulator --help``); ``command_prefix`` runs it under another
    command (e.g. ``["taskset", "-c", "0"]``); ``stderr`` is where its warnings go (default: inherited).
    Use it as a context manager, or call ``.stop()``.
    """
    command = [*command_prefix, python, "-m", "airflow_provider_codecheck.emulator"]
    command += ["--host", host, "--port", str(port), *(["--tls"] if tls else []), *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=None if env is None else dict(env),
        preexec_fn=preexec_fn,
    )
    lines: list[str] = []
    wanted = 2 if tls else 1

    def read_banner() -> None:
        assert process.stdout is not None
        while len(lines) < wanted and (line := process.stdout.readline()):
            lines.append(line.strip())

    # A thread with a join timeout rather than select(): the banner may sit in the text wrapper's buffer.
    reader = threading.Thread(target=read_banner, daemon=True)
    reader.start()
    reader.join(startup_timeout)
    if len(lines) < wanted or not lines[0].startswith("http"):
        process.kill()
        process.wait()
        raise RuntimeError(f"the emulator did not start within {startup_timeout} s (stdout: {lines!r})")
    ca_file = lines[1].split("CA file:", 1)[1].strip() if tls else None
    return EmulatorProcess(process, lines[0], ca_file)


def reset_process_state() -> None:
    """Forget what this process learned from earlier tests: request budgets (a 429 one test provoked would
    pace the next), cached IAM tokens, rejected credentials and the triggers' cached connection settings.

    Call it between tests that reset the emulator or change a connection (the ``codecheck_connection``
    fixture does).
    """
    from airflow_provider_codecheck.core import budgets, iam

    budgets.BUDGETS.clear()
    iam.TOKEN_CACHE.clear()
    iam.CREDENTIAL_MEMO.clear()
    # Only if something imported the hook: importing it here would import Airflow.
    hooks = sys.modules.get("airflow_provider_codecheck.hooks.codecheck")
    if hooks is not None:
        hooks.CONNECTION_CACHE.clear()
