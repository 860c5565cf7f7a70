"""The full stack for the end-to-end tests: PostgreSQL, Airflow 3.3 (api-server, scheduler, dag-processor, one or
more triggerers, LocalExecutor), the CodeArts Check emulator, and the Airflow REST API client.

Everything is started as processes of its own (each in its own process group) under a temp folder and stopped
by pid through :class:`Stack`, also when a test fails. ``start_stack`` brings the whole stack up; the pieces
(``start_postgres``, ``airflow_env``, ``start_airflow``, ``wait_for_health``, ``Emulator``, ``AirflowApi``) are
public so that other full-stack runs (the scale run) can assemble their own.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_codecheck.emulator.defaults import IAM_DOMAIN, IAM_PASSWORD, IAM_USER

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "example_dags"
VENV_BIN = Path(sys.executable).parent
AIRFLOW = str(VENV_BIN / "airflow")
ADMIN_USER = "admin"
TERMINAL_RUN_STATES = {"success", "failed"}

# What the scenarios use: the connection, the example DAGs, the defects the emulator's scans report.
CONN_ID = "codecheck_default"
CONN_TYPE = "huaweicloud_codecheck"
DAG_RUN_AND_BRANCH = "example_codecheck_run_and_branch"
DAG_SENSOR = "example_codecheck_sensor"
DAG_GATE = "example_codecheck_quality_gate"
DAG_EVENT = "example_codecheck_event_driven"
EXAMPLE_DAGS = (DAG_RUN_AND_BRANCH, DAG_SENSOR, DAG_GATE)
DEFECTS_OK = {"critical": 0, "major": 3, "minor": 7, "suggestion": 12}
DEFECTS_BAD = {"critical": 2, "major": 15, "minor": 1, "suggestion": 0}

logger = logging.getLogger("e2e")


def log(message: str) -> None:
    """Progress of the stack: shown live by ``make e2e`` (log_cli) and with a failing test's report."""
    logger.info(message)


class SetupError(RuntimeError):
    """The stack could not be brought up: no test that needs it can run."""


class StopWaiting(AssertionError):
    """Raised by a ``wait_until`` probe that sees the awaited thing can no longer happen (a run ended early)."""


# --- processes --------------------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path


class Stack:
    """Processes this run started, each in its own process group, stopped by pid in reverse order."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.services: list[Service] = []
        self.cleanups: list[tuple[str, Callable[[], None]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log_name: str | None = None) -> Service:
        log_path = self.tmp / "logs" / (log_name or f"{name}.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=self.tmp,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: its children are stopped with it
            )
        service = Service(name, proc, log_path)
        self.services.append(service)
        log(f"started {name} (pid {proc.pid}), log {log_path}")
        return service

    def stop(self, service: Service, sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
        """Signal the service's process group (its pid is the group id), then SIGKILL after ``grace``."""
        proc = service.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{service.name} (pid {proc.pid}) ignored signal {sig}; SIGKILL")
        # Children may outlive a leader that exited: the group is ours, end what is left of it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if service in self.services:
            self.services.remove(service)

    def on_close(self, name: str, action: Callable[[], None]) -> None:
        self.cleanups.append((name, action))

    def close(self) -> None:
        for service in reversed(list(self.services)):
            try:
                self.stop(service)
                log(f"stopped {service.name}")
            except Exception as error:  # keep stopping the others
                log(f"could not stop {service.name}: {error}")
        for name, action in reversed(self.cleanups):
            try:
                action()
                log(f"stopped {name}")
            except Exception as error:
                log(f"could not stop {name}: {error}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(argv: list[str], log_path: Path, **kwargs: Any) -> None:
    """Run a set-up command to completion, its output in ``log_path``; SetupError if it fails."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise SetupError(f"{' '.join(map(str, argv))} exited {result.returncode}; log {log_path}:\n{tail}")


def wait_until(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll ``probe`` until it returns something truthy (returned); TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (SetupError, StopWaiting):
            raise
        except Exception as error:  # the probe's target may not be up yet
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last error: {last_error}")


# --- system packages --------------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def ensure_debian_packages(chromium: bool = True) -> None:
    """Install PostgreSQL (and Chromium for the browser tests) from Debian when missing; needs root."""
    missing = []
    if postgres_bindir() is None:
        missing.append("postgresql")
    if chromium and shutil.which("chromium") is None:
        missing.append("chromium")
    if not missing:
        return
    if os.geteuid() != 0:
        raise SetupError(f"missing Debian packages {missing}; install them (as root: apt-get install -y ...)")
    log(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


# --- PostgreSQL -------------------------------------------------------------------------------------------


@dataclass
class Postgres:
    port: int
    data_dir: Path
    bindir: Path
    pid: int

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"


def as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user when we are root."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def start_postgres(tmp: Path, stack: Stack, max_connections: int = 200) -> Postgres:
    """A throwaway PostgreSQL on loopback with its data in ``tmp`` (durability off: it is a test database)."""
    bindir = postgres_bindir()
    if bindir is None:
        raise SetupError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
    root = tmp / "postgres"
    data_dir, socket_dir, log_path = root / "data", root / "socket", tmp / "logs" / "postgres.log"
    socket_dir.mkdir(parents=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(socket_dir, "postgres", "postgres")
        log_path.touch()
        shutil.chown(log_path, "postgres", "postgres")
    user = as_postgres_user()
    run(
        [
            *user,
            str(bindir / "initdb"),
            "-D",
            str(data_dir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        tmp / "logs" / "initdb.log",
    )
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir} "
        f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections={max_connections}"
    )
    pg_ctl = str(bindir / "pg_ctl")
    run(
        [*user, pg_ctl, "-D", str(data_dir), "-l", str(log_path), "-o", options, "-w", "-t", "60", "start"],
        tmp / "logs" / "pg_ctl.log",
    )
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    pg = Postgres(port, data_dir, bindir, pid)

    def stop() -> None:
        result = subprocess.run(
            [*user, pg_ctl, "-D", str(data_dir), "-m", "fast", "-w", "-t", "30", "stop"],
            capture_output=True,
        )
        if result.returncode != 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    stack.on_close(f"postgres (pid {pid})", stop)
    run(
        [*user, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "airflow"],
        tmp / "logs" / "createdb.log",
    )
    log(f"PostgreSQL up on 127.0.0.1:{port} (pid {pid}), data {data_dir}")
    return pg


# --- the emulator -----------------------------------------------------------------------------------------


class Emulator:
    """The CodeArts Check emulator as a process of its own, and its admin API (``/_emulator/...``)."""

    def __init__(self, stack: Stack, env: dict[str, str], args: Sequence[str] = ()) -> None:
        self.service = stack.start(
            "emulator",
            [sys.executable, "-m", "airflow_provider_codecheck.emulator", "--port", "0", *args],
            env,
        )
        # The first stdout line is the base URL (stdout and stderr share the log file).
        self.base_url: str = wait_until("the emulator's base URL", self._first_line, 30, 0.1)
        self.http = httpx.Client(base_url=self.base_url, timeout=10)
        log(f"emulator at {self.base_url}")

    def _first_line(self) -> str | None:
        if self.service.proc.poll() is not None:
            raise SetupError(f"the emulator exited: {self.service.log_path.read_text()[-2000:]}")
        for line in self.service.log_path.read_text().splitlines():
            if line.startswith("http"):
                return line.strip()
        return None

    def put_task(self, **spec: Any) -> dict[str, Any]:
        response = self.http.post("/_emulator/tasks", json=spec)
        response.raise_for_status()
        return response.json()

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.http.get(f"/_emulator/tasks/{task_id}")
        response.raise_for_status()
        return response.json()

    def has_task(self, task_id: str) -> bool:
        return self.http.get(f"/_emulator/tasks/{task_id}").status_code == 200

    def commit(self, task_id: str, **spec: Any) -> dict[str, Any]:
        """A scan of ``task_id`` started "from outside" (as a commit would), not by Airflow."""
        response = self.http.post(f"/_emulator/tasks/{task_id}/commit", json=spec)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/_emulator/stats")
        response.raise_for_status()
        return response.json()

    def requests_starting(self, prefix: str) -> int:
        """How many requests of one kind (``"progress "``, ``"checkrecord "``) the emulator has answered."""
        requests = self.stats()["requests"]
        return sum(count for key, count in requests.items() if key.startswith(prefix))

    def progress_requests(self) -> int:
        return self.requests_starting("progress ")


# --- Airflow ----------------------------------------------------------------------------------------------


def airflow_env(
    tmp: Path, pg: Postgres, api_port: int, dags_folder: Path = DAGS_FOLDER, **overrides: str
) -> dict[str, str]:
    """The environment of every Airflow process of the stack: its AIRFLOW_HOME in ``tmp``, PostgreSQL,
    LocalExecutor, the simple auth manager with a generated admin password, short heartbeats. ``overrides``
    are more ``AIRFLOW__...`` settings (or replacements)."""
    from cryptography.fernet import Fernet

    home = tmp / "airflow_home"
    home.mkdir()
    passwords = tmp / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({ADMIN_USER: secrets.token_urlsafe(16)}))
    base = f"http://127.0.0.1:{api_port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.sqlalchemy_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            # A killed triggerer's triggers are handed to a live one once its heartbeat is this old.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "8",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            **overrides,
        }
    )
    return env


class AirflowApi:
    """The Airflow REST API with a JWT from the simple auth manager's ``/auth/token``."""

    def __init__(self, base_url: str, password_file: Path) -> None:
        self.base_url = base_url
        self.password_file = password_file
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.token = ""

    def login(self) -> str:
        password = json.loads(self.password_file.read_text())[ADMIN_USER]
        response = self.http.post("/auth/token", json={"username": ADMIN_USER, "password": password})
        if response.status_code != 201:
            raise SetupError(f"/auth/token answered {response.status_code}: {response.text}")
        self.token = response.json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        return self.token

    def request(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        response = self.http.request(method, f"/api/v2{path}", **kwargs)
        if response.status_code not in expect:
            raise AssertionError(
                f"{method} /api/v2{path} answered {response.status_code}: {response.text[:500]}"
            )
        return response.json() if response.content else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def health(self) -> dict[str, Any]:
        return self.http.get("/api/v2/monitor/health").json()

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> None:
        self.request(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            expect=(200,),
            json={"dag_run_id": run_id, "logical_date": None, "conf": conf or {}},
        )

    def unpause(self, dag_id: str) -> dict[str, Any]:
        return self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def dag_runs(self, dag_id: str) -> dict[str, dict[str, Any]]:
        body = self.get(f"/dags/{dag_id}/dagRuns", params={"limit": 100})
        return {run["dag_run_id"]: run for run in body["dag_runs"]}

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        body = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in body["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        value = entry["value"]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        body = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        content = body.get("content")
        if isinstance(content, list):  # structured records: the exception sits beside the event
            return "\n".join(json.dumps(item) if isinstance(item, dict) else str(item) for item in content)
        return str(content)


def next_log_name(stack: Stack, stem: str) -> str:
    """``<stem>-1.log``, or the next number free in the logs folder (a restarted process keeps the old log)."""
    number = 1
    while (stack.tmp / "logs" / f"{stem}-{number}.log").exists():
        number += 1
    return f"{stem}-{number}.log"


def start_triggerer(stack: Stack, env: dict[str, str], name: str = "triggerer") -> Service:
    """One ``airflow triggerer`` process; its log is ``logs/triggerer-N.log`` with the next free N."""
    return stack.start(name, [AIRFLOW, "triggerer"], env, next_log_name(stack, "triggerer"))


def start_airflow(
    stack: Stack, env: dict[str, str], api_port: int, triggerers: int = 1
) -> dict[str, Service]:
    """The Airflow processes: api-server, scheduler, dag-processor and ``triggerers`` triggerers. One
    triggerer is the service ``"triggerer"``; several are ``"triggerer-1"``, ``"triggerer-2"``, ... Each
    triggerer writes its own log (``logs/triggerer-N.log``)."""
    if triggerers < 1:
        raise ValueError(f"at least one triggerer is needed, not {triggerers}")
    services = {
        "api-server": stack.start(
            "api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port)], env
        ),
        "scheduler": stack.start("scheduler", [AIRFLOW, "scheduler"], env),
        "dag-processor": stack.start("dag-processor", [AIRFLOW, "dag-processor"], env),
    }
    for number in range(1, triggerers + 1):
        name = "triggerer" if triggerers == 1 else f"triggerer-{number}"
        services[name] = start_triggerer(stack, env, name)
    return services


def wait_for_health(api: AirflowApi, services: dict[str, Service], timeout: float = 180) -> dict[str, Any]:
    """Wait until the API reports the metadatabase, scheduler, triggerer and dag-processor healthy;
    SetupError at once if one of ``services`` exits, or after ``timeout``."""

    def healthy() -> dict[str, Any] | None:
        for service in services.values():
            if service.proc.poll() is not None:
                tail = service.log_path.read_text(errors="replace")[-3000:]
                raise SetupError(f"{service.name} exited with {service.proc.returncode}:\n{tail}")
        try:
            body = api.health()
        except (httpx.HTTPError, ValueError):
            return None
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        if all((body.get(part) or {}).get("status") == "healthy" for part in parts):
            return body
        return None

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = healthy()
        if body:
            return body
        time.sleep(1)
    last: Any = None
    with contextlib.suppress(Exception):
        last = api.health()
    raise SetupError(f"Airflow not healthy after {timeout:.0f}s: {last}")


@dataclass
class RunningStack:
    """The whole stack, up: what the tests talk to and what they may restart."""

    stack: Stack
    tmp: Path
    postgres: Postgres
    env: dict[str, str]
    emulator: Emulator
    api: AirflowApi
    services: dict[str, Service]
    health: dict[str, Any]

    @property
    def airflow_home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    def restart_triggerer(
        self, name: str = "triggerer", sig: int = signal.SIGTERM, grace: float = 30
    ) -> Service:
        """Stop the triggerer ``name`` with ``sig`` (SIGKILL: a crash) and start a new one in its place."""
        self.stack.stop(self.services[name], sig, grace)
        self.services[name] = start_triggerer(self.stack, self.env, name)
        return self.services[name]


def start_stack(
    tmp: Path, stack: Stack, triggerers: int = 1, dags_folder: Path = DAGS_FOLDER, **overrides: str
) -> RunningStack:
    """PostgreSQL, ``airflow db migrate``, the emulator and Airflow, healthy and logged in."""
    started = time.monotonic()
    pg = start_postgres(tmp, stack)
    api_port = free_port()
    env = airflow_env(tmp, pg, api_port, dags_folder, **overrides)
    log("airflow db migrate")
    run([AIRFLOW, "db", "migrate"], tmp / "logs" / "db-migrate.log", env=env, cwd=tmp)
    log(f"migrated in {time.monotonic() - started:.0f}s")
    emulator = Emulator(stack, env)
    services = start_airflow(stack, env, api_port, triggerers)
    api = AirflowApi(
        f"http://127.0.0.1:{api_port}", Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    )
    health = wait_for_health(api, services)
    api.login()
    log(f"stack up in {time.monotonic() - started:.0f}s")
    return RunningStack(stack, tmp, pg, env, emulator, api, services, health)


# --- DAG runs ---------------------------------------------------------------------------------------------


@dataclass
class RunWatch:
    """What was seen of one DAG run while polling it."""

    dag_id: str
    run_id: str
    state: str | None = None
    states_seen: dict[str, list[str]] = field(default_factory=dict)  # task_id -> states in order
    triggerer_jobs: dict[str, set[int]] = field(default_factory=dict)  # task_id -> triggerer job ids
    deferred_progress: dict[str, list[int]] = field(default_factory=dict)  # emulator polls while deferred
    tis: dict[str, dict[str, Any]] = field(default_factory=dict)

    def saw(self, task_id: str, state: str) -> bool:
        return state in self.states_seen.get(task_id, [])

    def progress_polls_while_deferred(self, task_id: str) -> int:
        counts = self.deferred_progress.get(task_id, [])
        return counts[-1] - counts[0] if counts else 0


def observe(api: AirflowApi, emulator: Emulator, watch: RunWatch) -> None:
    watch.state = api.get(f"/dags/{watch.dag_id}/dagRuns/{watch.run_id}")["state"]
    progress = emulator.progress_requests()
    watch.tis = api.task_instances(watch.dag_id, watch.run_id)
    for task_id, ti in watch.tis.items():
        state = ti["state"] or "none"
        seen = watch.states_seen.setdefault(task_id, [])
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == "deferred":
            watch.deferred_progress.setdefault(task_id, []).append(progress)
            job = ti.get("triggerer_job")
            if job and job.get("id") is not None:
                watch.triggerer_jobs.setdefault(task_id, set()).add(job["id"])


def watch_runs(api: AirflowApi, emulator: Emulator, watches: list[RunWatch], timeout: float) -> None:
    """Observe the runs every 0.4 s (so short states such as DEFERRED are seen) until they all end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for watch in watches:
            if watch.state not in TERMINAL_RUN_STATES:
                observe(api, emulator, watch)
        if all(watch.state in TERMINAL_RUN_STATES for watch in watches):
            return
        time.sleep(0.4)
    pending = [
        f"{w.dag_id}/{w.run_id}={w.state} {w.states_seen}"
        for w in watches
        if w.state not in TERMINAL_RUN_STATES
    ]
    raise AssertionError(f"DAG runs still not finished after {timeout:.0f}s: {pending}")


def trigger_log_files(airflow_home: Path, dag_id: str, run_id: str, task_id: str) -> list[str]:
    """The triggerer's log files for this task instance (``*.trigger.<job id>.log``), one per triggerer job."""
    folder = airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return sorted(path for path in glob.glob(str(folder / "*")) if ".trigger." in os.path.basename(path))


def event_texts(lines: list[str]) -> list[str]:
    """The ``event`` of each structured log line (the line itself when it is not JSON)."""
    texts = []
    for line in lines:
        try:
            record = json.loads(line)
            texts.append(str(record.get("event", "")))
        except ValueError:
            texts.append(line)
    return texts


def trigger_log_events(airflow_home: Path, watch: RunWatch, task_id: str) -> list[str]:
    """What the triggerer logged for this task instance, every triggerer job's file in turn."""
    lines: list[str] = []
    for path in trigger_log_files(airflow_home, watch.dag_id, watch.run_id, task_id):
        lines.extend(Path(path).read_text(errors="replace").splitlines())
    return event_texts(lines)


def connection_body(emulator: Emulator, **fields: Any) -> dict[str, Any]:
    """The REST body of the ``codecheck_default`` connection to the emulator (IAM password auth)."""
    extra = {"auth_type": "password", "domain_name": IAM_DOMAIN, "iam_endpoint": emulator.base_url}
    return {
        "connection_id": CONN_ID,
        "conn_type": CONN_TYPE,
        "host": emulator.base_url,
        "login": IAM_USER,
        "password": IAM_PASSWORD,
        "extra": json.dumps(extra),
        **fields,
    }
