"""Full-stack end-to-end test of the provider: PostgreSQL + Airflow 3.3 (api-server, scheduler, dag-processor,
triggerer, LocalExecutor) + the CodeArts Check emulator + headless Chromium on the connection form.

Run with the project's venv: ``make e2e`` (or ``.venv/bin/python e2e/run_e2e.py``). Everything it starts
lives in a temp folder and is stopped by pid at the end, also on failure. It exits non-zero when any check
fails; the last line reads ``N passed, M failed``. ``--keep`` keeps the temp folder (it is kept anyway when a
check fails, for its logs); the screenshot is kept in every case.
"""

from __future__ import annotations

import argparse
import ast
import base64
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_codecheck.emulator.defaults import IAM_DOMAIN, IAM_PASSWORD, IAM_USER

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "example_dags"
VENV_BIN = Path(sys.executable).parent
AIRFLOW = str(VENV_BIN / "airflow")

CONN_ID = "codecheck_default"
CONN_TYPE = "huaweicloud_codecheck"
CONN_TYPE_NAME = "Huawei Cloud CodeArts Check"
ADMIN_USER = "admin"
DAG_RUN_AND_BRANCH = "example_codecheck_run_and_branch"
DAG_SENSOR = "example_codecheck_sensor"
DAG_GATE = "example_codecheck_quality_gate"
DAG_EVENT = "example_codecheck_event_driven"
EXAMPLE_DAGS = (DAG_RUN_AND_BRANCH, DAG_SENSOR, DAG_GATE)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
TERMINAL_RUN_STATES = {"success", "failed"}
# Kept in the temp folder in every case: the filled form (extra fields; standard fields), the list after saving.
SCREENSHOTS = (
    "connection-form.png",
    "connection-form-standard.png",
    "connections-list.png",
    "connection-form-error.png",
)


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


class SetupError(RuntimeError):
    """The stack could not be brought up: no check can run."""


# --- checks -----------------------------------------------------------------------------------------------


class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []
        self.skipped: list[tuple[str, str]] = []

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append((name, bool(ok), detail))
        print(f"  {'PASS' if ok else 'FAIL'}  {name}{f'  ({detail})' if detail else ''}", flush=True)
        return bool(ok)

    def equal(self, name: str, actual: Any, expected: Any) -> bool:
        ok = actual == expected
        return self.check(name, ok, f"got {actual!r}" if ok else f"expected {expected!r}, got {actual!r}")

    def skip(self, name: str, reason: str) -> None:
        """A check that cannot pass for a reason outside the provider (a known upstream bug)."""
        self.skipped.append((name, reason))
        print(f"  SKIP  {name}  ({reason})", flush=True)

    @property
    def failed(self) -> list[tuple[str, bool, str]]:
        return [result for result in self.results if not result[1]]

    def summary(self) -> str:
        line = f"{len(self.results) - len(self.failed)} passed, {len(self.failed)} failed"
        return f"{line}, {len(self.skipped)} skipped" if self.skipped else line


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
    with open(log_path, "ab") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise SetupError(f"{' '.join(map(str, argv))} exited {result.returncode}; log {log_path}:\n{tail}")


def wait_until(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except SetupError:
            raise
        except Exception as error:  # the probe's target may not be up yet
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last error: {last_error}")


# --- system packages --------------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def ensure_debian_packages() -> None:
    missing = []
    if postgres_bindir() is None:
        missing.append("postgresql")
    if shutil.which("chromium") is None:
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


def start_postgres(tmp: Path, stack: Stack) -> Postgres:
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
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
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
    def __init__(self, stack: Stack, env: dict[str, str]) -> None:
        self.service = stack.start(
            "emulator", [sys.executable, "-m", "airflow_provider_codecheck.emulator", "--port", "0"], env
        )
        # The first stdout line is the base URL (stdout and stderr share the log file).
        self.base_url = wait_until("the emulator's base URL", self._first_line, 30, 0.1)
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

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/_emulator/stats")
        response.raise_for_status()
        return response.json()

    def progress_requests(self) -> int:
        requests = self.stats()["requests"]
        return sum(count for key, count in requests.items() if key.startswith("progress "))


# --- Airflow ----------------------------------------------------------------------------------------------


def airflow_env(tmp: Path, pg: Postgres, api_port: int) -> dict[str, str]:
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
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
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


def start_airflow(stack: Stack, env: dict[str, str], api_port: int) -> dict[str, Service]:
    services = {
        "api-server": stack.start(
            "api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port)], env
        ),
        "scheduler": stack.start("scheduler", [AIRFLOW, "scheduler"], env),
        "dag-processor": stack.start("dag-processor", [AIRFLOW, "dag-processor"], env),
        "triggerer": stack.start("triggerer", [AIRFLOW, "triggerer"], env, "triggerer-1.log"),
    }
    return services


def wait_for_health(api: AirflowApi, services: dict[str, Service], timeout: float = 180) -> dict[str, Any]:
    def healthy() -> dict[str, Any] | None:
        for service in services.values():
            if service.proc.poll() is not None:
                tail = service.log_path.read_text(errors="replace")[-3000:]
                raise SetupError(f"{service.name} exited with {service.proc.returncode}:\n{tail}")
        try:
            body = api.health()
        except httpx.HTTPError:
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


def trigger_log_lines(airflow_home: Path, dag_id: str, run_id: str, task_id: str) -> list[str]:
    """Lines the triggerer wrote for this task instance (its ``*.trigger.<job id>.log`` files)."""
    pattern = str(
        airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}" / "*"
    )
    lines: list[str] = []
    for path in sorted(glob.glob(pattern)):
        if ".trigger." in os.path.basename(path):
            lines.extend(Path(path).read_text(errors="replace").splitlines())
    return lines


def event_texts(lines: list[str]) -> list[str]:
    texts = []
    for line in lines:
        try:
            record = json.loads(line)
            texts.append(str(record.get("event", "")))
        except ValueError:
            texts.append(line)
    return texts


# --- headless Chromium over the DevTools protocol ---------------------------------------------------------


class Chromium:
    def __init__(self, stack: Stack, tmp: Path) -> None:
        from websockets.sync.client import connect

        profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp))
        self.service = stack.start(
            "chromium",
            [
                shutil.which("chromium") or "chromium",
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--window-size=1400,1100",
                "about:blank",
            ],
            {**os.environ},
        )
        port_file = profile / "DevToolsActivePort"
        port = wait_until(
            "Chromium's DevTools port", lambda: port_file.exists() and port_file.read_text().split()[0], 30
        )
        targets = wait_until(
            "a Chromium page target",
            lambda: [
                t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page"
            ],
            15,
        )
        self.exits = contextlib.ExitStack()
        self.ws = self.exits.enter_context(
            connect(targets[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=15)
        )
        self.next_id = 0
        self.events: list[dict[str, Any]] = []  # DevTools events (Network.* once enabled)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message_id = self.next_id
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if "method" in message:
                self.events.append(message)
            elif message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"CDP {method}: {message['error']}")
                return message.get("result", {})

    def exchanges(self, url_part: str) -> list[dict[str, Any]]:
        """The page's requests whose URL contains ``url_part``: method, post data, status, response body."""
        self.call("Runtime.evaluate", expression="1")  # drain pending events
        found: dict[str, dict[str, Any]] = {}
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Network.requestWillBeSent" and url_part in params["request"]["url"]:
                request = params["request"]
                found[params["requestId"]] = {
                    "method": request["method"],
                    "url": request["url"],
                    "body": request.get("postData"),
                }
            elif event["method"] == "Network.loadingFinished" and params.get("requestId") in found:
                found[params["requestId"]]["finished"] = True
            elif event["method"] == "Network.responseReceived" and params.get("requestId") in found:
                found[params["requestId"]]["status"] = params["response"]["status"]
        for request_id, exchange in found.items():
            if exchange.get("finished"):
                with contextlib.suppress(RuntimeError):
                    exchange["response"] = self.call("Network.getResponseBody", requestId=request_id)["body"]
        return list(found.values())

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, what: str, expression: str, timeout: float = 20) -> Any:
        return wait_until(what, lambda: self.evaluate(expression), timeout, 0.25)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def type_text(self, text: str) -> None:
        self.call("Input.insertText", text=text)

    def press(self, key: str, code: str, key_code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=code,
                windowsVirtualKeyCode=key_code,
                nativeVirtualKeyCode=key_code,
            )

    def click(self, element_js: str, what: str) -> None:
        """A real mouse click at the centre of the element ``element_js`` evaluates to, once it stands still
        (no animation moving it) and nothing covers it."""
        locate = (
            f"(() => {{ const el = {element_js}; if (!el) return null;"
            " el.scrollIntoView({block: 'center', behavior: 'instant'});"
            " const r = el.getBoundingClientRect(); const x = r.x + r.width / 2, y = r.y + r.height / 2;"
            " const hit = document.elementFromPoint(x, y);"
            " return [Math.round(x), Math.round(y), !!hit && (hit === el || el.contains(hit) || hit.contains(el)),"
            " hit ? hit.outerHTML.slice(0, 200) : null]; })()"
        )
        previous = None
        deadline = time.monotonic() + 10
        while True:
            box = self.evaluate(locate)
            if not box:
                raise AssertionError(f"nothing to click: {what}")
            if box == previous and box[2]:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} never stood still and uncovered: last seen at {box}")
            previous = box
            time.sleep(0.15)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, path: Path, height: int | None = None) -> None:
        """A PNG of the page; ``height`` makes the window that tall first (a long dialog then fits)."""
        if height:
            self.call(
                "Emulation.setDeviceMetricsOverride",
                width=1400,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            time.sleep(0.5)
        try:
            data = self.call("Page.captureScreenshot", format="png")["data"]
        finally:
            if height:
                self.call("Emulation.clearDeviceMetricsOverride")
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.exits.close()


# JS helpers injected into the page: visible elements by their text, form inputs by their label.
PAGE_HELPERS = r"""
window.__e2e = {
  visible(el) { return !!(el && (el.offsetWidth || el.offsetHeight || el.getClientRects().length)); },
  dialog() { return document.querySelector('[role=dialog]') || document; },
  byText(selector, text, root) {
    return [...(root || document).querySelectorAll(selector)]
      .find(el => this.visible(el) && el.textContent.trim() === text) || null;
  },
  labels(root) {
    return [...(root || this.dialog()).querySelectorAll('label')].filter(l => this.visible(l))
      .map(l => l.textContent.replace(/\s+/g, ' ').trim());
  },
  // The input that belongs to the field whose label reads `text` (label[for] or the same field group).
  inputFor(text, root) {
    const label = [...(root || this.dialog()).querySelectorAll('label')]
      .find(l => l.textContent.replace(/\s+/g, ' ').replace(/\*$/, '').trim() === text);
    if (!label) return null;
    if (label.htmlFor) { const el = document.getElementById(label.htmlFor); if (el) return el; }
    let group = label.parentElement;
    for (let i = 0; i < 4 && group; i++, group = group.parentElement) {
      const el = group.querySelector('input, textarea');
      if (el) return el;
    }
    return null;
  },
};
true
"""


def fill_field(browser: Chromium, label: str, value: str) -> None:
    """Click the field's input like a person and type the value into it."""
    element = f"__e2e.inputFor({json.dumps(label)})"
    browser.click(element, f"the input of {label!r}")
    if not browser.evaluate(f"document.activeElement === {element}"):
        state = browser.evaluate(
            f"[({element} || {{}}).outerHTML, document.activeElement && document.activeElement.outerHTML.slice(0, 300)]"
        )
        raise AssertionError(f"clicking the field {label!r} did not focus its input: {state}")
    browser.type_text(value)


AIRFLOW_PORT_ZERO_BUG = (
    "Airflow 3.3.2's Test button sends port 0 for a connection without a port and the API answers 400 "
    "'host or port to test differs' (apache/airflow#73298); the same request with port null is checked instead"
)


def ui_test_outcome(checks: Checks, outcome: str, exchange: dict[str, Any], api: AirflowApi) -> None:
    """The Test button's result, telling the known Airflow bug apart; then the UI's own request with port null."""
    name = "ui: Test Connection button against the emulator succeeds"
    body = json.loads(exchange.get("body") or "{}")
    known_bug = (
        outcome != "success"
        and exchange.get("status") == 400
        and body.get("port") == 0
        and "host or port to test differs" in str(exchange.get("response"))
    )
    if known_bug:
        checks.skip(name, AIRFLOW_PORT_ZERO_BUG)
    else:
        checks.check(name, outcome == "success", f"{outcome}; response {exchange.get('response')}")
    if body:
        # The request exactly as the UI sent it (masked password: the API reuses the stored secret).
        result = api.request("POST", "/connections/test", json={**body, "port": None})
        checks.check(
            "rest: the UI's test request (masked password, port null) succeeds against the emulator",
            result.get("status") is True,
            str(result.get("message")),
        )


def connection_form_check(
    checks: Checks, stack: Stack, tmp: Path, api: AirflowApi, emulator: Emulator, screenshot: Path
) -> bool:
    """Fill and save the add-connection form in the UI, test it there; True when the connection was saved."""
    browser = Chromium(stack, tmp)
    try:
        browser.call("Network.enable")
        browser.call(
            "Network.setCookie", name="_token", value=api.token, url=api.base_url, path="/", httpOnly=True
        )
        browser.call("Page.enable")
        browser.navigate(f"{api.base_url}/connections")
        browser.wait_for(
            "the connections page", "document.readyState === 'complete' && !!document.body.innerText", 30
        )
        browser.evaluate(PAGE_HELPERS)
        browser.wait_for(
            "the Add Connection button",
            "!!(window.__e2e || {}).byText && !!__e2e.byText('button', 'Add Connection')",
            30,
        )
        browser.click("__e2e.byText('button', 'Add Connection')", "the Add Connection button")
        browser.wait_for(
            "the connection dialog",
            "!!document.querySelector('[role=dialog]') && "
            "document.querySelector('[role=dialog]').innerText.includes('Select Connection Type')",
        )
        # Connection type: a react-select; type into it like a person and pick the option.
        browser.evaluate(
            "(() => { const el = __e2e.dialog().querySelector('input[id^=react-select], input[role=combobox]');"
            " el.focus(); return document.activeElement === el; })()"
        )
        browser.type_text("CodeArts")
        option = browser.wait_for(
            "the connection type option",
            f"(() => {{ const o = [...document.querySelectorAll('[role=option], [id*=option]')]"
            f".find(o => o.textContent.trim() === {json.dumps(CONN_TYPE_NAME)}); return o ? o.textContent : null; }})()",
        )
        checks.equal("ui: connection type offered in the type list", option, CONN_TYPE_NAME)
        browser.press("Enter", "Enter", 13)
        browser.wait_for(
            "the provider's fields", "__e2e.labels().some(l => l.startsWith('Endpoint URL'))", 20
        )
        standard_values = {
            "Connection ID": CONN_ID,
            "Endpoint URL": emulator.base_url,
            "IAM user name or Access Key (AK)": IAM_USER,
            "IAM password, Secret Key (SK) or X-Auth-Token": IAM_PASSWORD,
        }
        extra_values = {"Account (domain) name": IAM_DOMAIN, "IAM endpoint URL": emulator.base_url}
        for label, value in standard_values.items():
            fill_field(browser, label, value)
        browser.evaluate("document.activeElement && document.activeElement.blur(); true")
        browser.screenshot(screenshot.with_name("connection-form-standard.png"), height=1100)
        # The provider's extra fields are in the folded "Extra Fields" section: unfold it.
        browser.click("__e2e.byText('button', 'Extra Fields', __e2e.dialog())", "the Extra Fields section")
        browser.wait_for("the extra fields", "__e2e.labels().some(l => l.startsWith('Security token'))", 20)
        labels = browser.evaluate("__e2e.labels()")
        log(f"form labels: {labels}")

        def has_label(text: str) -> bool:
            return any(label.rstrip(" *") == text for label in labels)

        for text in (
            "Endpoint URL",
            "IAM user name or Access Key (AK)",
            "IAM password, Secret Key (SK) or X-Auth-Token",
            "Auth type",
            "Account (domain) name",
            "IAM endpoint URL",
            "Security token",
            "Verify TLS",
        ):
            checks.check(f"ui: form shows the field {text!r}", has_label(text))
        checks.check(
            "ui: hidden fields Port and Schema are not shown",
            not has_label("Port") and not has_label("Schema"),
            f"labels {labels}",
        )
        input_type = "(t => { const el = __e2e.inputFor(t); return el ? el.type : null; })"
        checks.equal(
            "ui: password field is a password input",
            browser.evaluate(f"{input_type}('IAM password, Secret Key (SK) or X-Auth-Token')"),
            "password",
        )
        checks.equal(
            "ui: security token field is a password input",
            browser.evaluate(f"{input_type}('Security token')"),
            "password",
        )
        checks.equal(
            "ui: endpoint URL field is a text input",
            browser.evaluate(f"{input_type}('Endpoint URL')"),
            "text",
        )
        checks.equal(
            "ui: Auth type defaults to password",
            browser.evaluate("(document.querySelector('input[name=element_auth_type]') || {}).value"),
            "password",
        )
        for label, value in extra_values.items():
            fill_field(browser, label, value)
        values = {**standard_values, **extra_values}
        filled = browser.evaluate(
            "(" + json.dumps(list(values)) + ").map(t => (__e2e.inputFor(t) || {}).value)"
        )
        checks.equal("ui: typed values are in the form", filled, list(values.values()))
        browser.evaluate("document.activeElement && document.activeElement.blur(); true")
        browser.screenshot(screenshot, height=2300)
        log(
            f"screenshots of the filled form: {screenshot} (extra fields), connection-form-standard.png beside it"
        )

        browser.click("__e2e.byText('button', 'Save', __e2e.dialog())", "the Save button")
        browser.wait_for("the dialog to close", "!document.querySelector('[role=dialog]')", 20)
        browser.wait_for(
            "the new connection in the list", f"document.body.innerText.includes({json.dumps(CONN_ID)})", 20
        )
        saved = [
            x
            for x in browser.exchanges("/api/v2/connections")
            if x["method"] == "POST" and x["url"].endswith("/connections")
        ]
        checks.check(
            "ui: Save posted the connection (201)",
            bool(saved) and saved[-1].get("status") == 201,
            f"{[x.get('status') for x in saved]}",
        )
        # Airflow 3.3 shows Test Connection in the connection's row of the list.
        browser.evaluate(PAGE_HELPERS)
        browser.click(
            "[...document.querySelectorAll('button')].find(b => __e2e.visible(b) &&"
            " (b.getAttribute('aria-label') || b.title || b.textContent).includes('Test Connection'))",
            "the Test Connection button",
        )
        outcome = browser.wait_for(
            "the connection test's outcome",
            "(() => { const t = document.body.innerText;"
            " if (t.includes('Test Connection Successful')) return 'success';"
            " const i = t.indexOf('Test Connection Failed');"
            " if (i >= 0) return 'failed: ' + t.slice(i, i + 400);"
            " return null; })()",
            40,
        )
        tests = [x for x in browser.exchanges("/api/v2/connections/test") if x["method"] == "POST"]
        checks.check(
            "ui: Test Connection button posted the saved connection to /api/v2/connections/test",
            bool(tests) and json.loads(tests[-1]["body"] or "{}").get("connection_id") == CONN_ID,
            f"{len(tests)} request(s)",
        )
        ui_test_outcome(checks, outcome, tests[-1] if tests else {}, api)
        browser.screenshot(screenshot.with_name("connections-list.png"))
        return True
    except Exception as error:
        with contextlib.suppress(Exception):
            browser.screenshot(screenshot.with_name("connection-form-error.png"))
        checks.check("ui: connection form flow completed", False, f"{type(error).__name__}: {error}")
        return False
    finally:
        browser.close()
        stack.stop(browser.service)


def stored_connection_checks(checks: Checks, api: AirflowApi, emulator: Emulator) -> None:
    conn = api.get(f"/connections/{CONN_ID}")
    extra = json.loads(conn.get("extra") or "{}")
    checks.equal("connection saved: conn_type", conn["conn_type"], CONN_TYPE)
    checks.equal("connection saved: host", conn["host"], emulator.base_url)
    checks.equal("connection saved: login", conn["login"], IAM_USER)
    checks.equal(
        "connection saved: extra fields",
        {key: extra.get(key) for key in ("auth_type", "domain_name", "iam_endpoint")},
        {"auth_type": "password", "domain_name": IAM_DOMAIN, "iam_endpoint": emulator.base_url},
    )
    result = api.request(
        "POST",
        "/connections/test",
        json={
            "connection_id": CONN_ID,
            "conn_type": CONN_TYPE,
            "host": emulator.base_url,
        },
    )
    checks.check(
        "rest: POST /connections/test of the saved connection",
        result.get("status") is True,
        str(result.get("message")),
    )
    bad = api.request(
        "POST",
        "/connections/test",
        json={
            "connection_id": "codecheck_e2e_bad",
            "conn_type": CONN_TYPE,
            "host": emulator.base_url,
            "login": IAM_USER,
            "password": "wrong-password",
            "extra": json.dumps(
                {"auth_type": "password", "domain_name": IAM_DOMAIN, "iam_endpoint": emulator.base_url}
            ),
        },
    )
    checks.check(
        "rest: connection test with a wrong password fails",
        bad.get("status") is False,
        str(bad.get("message"))[:200],
    )


def create_connection_via_rest(api: AirflowApi, emulator: Emulator) -> None:
    api.request("DELETE", f"/connections/{CONN_ID}", expect=(204, 404))
    api.request(
        "POST",
        "/connections",
        expect=(201,),
        json={
            "connection_id": CONN_ID,
            "conn_type": CONN_TYPE,
            "host": emulator.base_url,
            "login": IAM_USER,
            "password": IAM_PASSWORD,
            "extra": json.dumps(
                {"auth_type": "password", "domain_name": IAM_DOMAIN, "iam_endpoint": emulator.base_url}
            ),
        },
    )


# --- scenarios --------------------------------------------------------------------------------------------

DEFECTS_OK = {"critical": 0, "major": 3, "minor": 7, "suggestion": 12}
DEFECTS_BAD = {"critical": 2, "major": 15, "minor": 1, "suggestion": 0}
RESTART_SCAN_S = 60  # a new triggerer needs ~15 s to start and up to ~20 s more for its first poll here
EVENT_TASK = "nightly-scan"  # the task example_codecheck_event_driven watches
EVENT_ASSET_URI = f"codecheck://{EVENT_TASK}"
EVENT_POLL_S = 60  # the example's poll_interval (hard-coded there): every wait below allows for it
EVENT_PROJECT_ID = "0123456789abcdef0123456789abcdef"  # any 32-character project UUID: the emulator takes it
WATERMARK_KEY = "codecheck_scan_watermark"


def dict_in(text: Any) -> Any:
    """The dict literal inside a task's return value such as ``"deploying; defects {...}"``."""
    text = str(text)
    try:
        return ast.literal_eval(text[text.index("{") : text.rindex("}") + 1])
    except ValueError:
        return text


def trigger_log_events(airflow_home: Path, watch: RunWatch, task_id: str) -> list[str]:
    return event_texts(trigger_log_lines(airflow_home, watch.dag_id, watch.run_id, task_id))


def deferred_checks(
    checks: Checks, watch: RunWatch, task_id: str, airflow_home: Path, codecheck_id: str
) -> None:
    label = f"{watch.dag_id}.{task_id}"
    checks.check(
        f"{label}: entered DEFERRED",
        watch.saw(task_id, "deferred"),
        f"states {watch.states_seen.get(task_id)}",
    )
    checks.check(
        f"{label}: a triggerer job held the trigger",
        bool(watch.triggerer_jobs.get(task_id)),
        f"triggerer jobs {sorted(watch.triggerer_jobs.get(task_id, []))}",
    )
    texts = trigger_log_events(airflow_home, watch, task_id)
    polled = [t for t in texts if f"CodeArts task {codecheck_id}: checking" in t]
    checks.check(
        f"{label}: the triggerer's log shows the trigger polling the running scan",
        bool(polled),
        polled[0] if polled else f"trigger log: {texts}",
    )


def main_scenarios(checks: Checks, api: AirflowApi, emulator: Emulator, airflow_home: Path) -> None:
    # The sensor waits for a scan started elsewhere: nightly-scan exists but was never run.
    emulator.put_task(task_id="nightly-scan")
    emulator.put_task(task_id="demo-scan", duration_s=10, defects=DEFECTS_OK)
    emulator.put_task(task_id="gate-scan", duration_s=8, defects=DEFECTS_OK)
    emulator.put_task(task_id="gate-fail-scan", duration_s=8, defects=DEFECTS_BAD)
    for dag_id in EXAMPLE_DAGS:
        api.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    # Phase 1, the sensor alone: it defers and the triggerer polls the never-run task (this also warms the
    # triggerer up, so the later triggers start at once).
    sensor = RunWatch(DAG_SENSOR, "e2e-sensor")
    api.trigger(DAG_SENSOR, sensor.run_id)
    log("triggered the sensor DAG; waiting for its trigger to poll the not-yet-started scan")

    def sensor_polled_the_idle_task() -> bool:
        observe(api, emulator, sensor)
        if sensor.state in TERMINAL_RUN_STATES:
            raise AssertionError(f"the sensor run ended early: {sensor.state} {sensor.states_seen}")
        texts = trigger_log_events(airflow_home, sensor, "wait_for_scan")
        seen = any("CodeArts task nightly-scan: not_started" in t for t in texts)
        return seen and sensor.progress_polls_while_deferred("wait_for_scan") >= 3

    wait_until("the sensor's trigger to poll nightly-scan", sensor_polled_the_idle_task, 240, 0.4)
    checks.check(
        "sensor: deferred and polled by the triggerer while nobody ran the scan",
        True,
        f"{sensor.progress_polls_while_deferred('wait_for_scan')} progress requests while deferred",
    )

    # Phase 2: the scan starts "elsewhere", and the three operator runs start.
    emulator.put_task(task_id="nightly-scan", duration_s=4, running=True, defects=DEFECTS_OK)
    watches = {
        "branch": RunWatch(DAG_RUN_AND_BRANCH, "e2e-branch"),
        "gate": RunWatch(DAG_GATE, "e2e-gate-pass"),
        "gate_fail": RunWatch(DAG_GATE, "e2e-gate-fail"),
    }
    api.trigger(DAG_RUN_AND_BRANCH, watches["branch"].run_id)
    api.trigger(DAG_GATE, watches["gate"].run_id)
    api.trigger(DAG_GATE, watches["gate_fail"].run_id, {"codecheck_task_id": "gate-fail-scan"})
    log("started the nightly-scan scan in the emulator and triggered 3 operator DAG runs; watching them")
    watch_runs(api, emulator, [sensor, *watches.values()], timeout=300)
    stats = emulator.stats()

    # sensor
    checks.equal("sensor: DAG run state", sensor.state, "success")
    deferred_checks(checks, sensor, "wait_for_scan", airflow_home, "nightly-scan")
    checks.equal("sensor: the sensor started no scan", stats["runs"].get("nightly-scan", 0), 0)
    checks.equal(
        "sensor: wait_for_scan XCom status",
        api.xcom(DAG_SENSOR, sensor.run_id, "wait_for_scan", "status"),
        "success",
    )
    checks.equal(
        "sensor: wait_for_scan XCom ratio", api.xcom(DAG_SENSOR, sensor.run_id, "wait_for_scan", "ratio"), 100
    )
    checks.equal(
        "sensor: summarize got status and ratio from XCom",
        api.xcom(DAG_SENSOR, sensor.run_id, "summarize"),
        "scan success at 100%",
    )

    # run_and_branch
    branch = watches["branch"]
    checks.equal("run_and_branch: DAG run state", branch.state, "success")
    deferred_checks(checks, branch, "run_scan", airflow_home, "demo-scan")
    emulated = emulator.task("demo-scan")
    xcom = lambda key: api.xcom(DAG_RUN_AND_BRANCH, branch.run_id, "run_scan", key)  # noqa: E731
    checks.equal("run_and_branch: run_scan XCom status", xcom("status"), "success")
    checks.equal("run_and_branch: run_scan XCom defects", xcom("defects"), DEFECTS_OK)
    checks.equal(
        "run_and_branch: run_scan XCom exec_id is the emulator's",
        xcom("exec_id"),
        emulated.get("last_exec_id"),
    )
    checks.equal("run_and_branch: one scan started (emulator runs)", stats["runs"].get("demo-scan"), 1)
    checks.equal("run_and_branch: on_verdict state", branch.tis["on_verdict"]["state"], "success")
    checks.equal("run_and_branch: publish state", branch.tis["publish"]["state"], "success")
    checks.equal("run_and_branch: report_failure state", branch.tis["report_failure"]["state"], "skipped")
    publish = api.xcom(DAG_RUN_AND_BRANCH, branch.run_id, "publish")
    checks.equal("run_and_branch: publish got the defects from XCom", dict_in(publish), DEFECTS_OK)

    # quality gate: under the gate
    gate = watches["gate"]
    checks.equal("quality_gate (under the gate): DAG run state", gate.state, "success")
    deferred_checks(checks, gate, "scan_with_gate", airflow_home, "gate-scan")
    checks.equal(
        "quality_gate (under the gate): XCom defects",
        api.xcom(DAG_GATE, gate.run_id, "scan_with_gate", "defects"),
        DEFECTS_OK,
    )
    deploy = api.xcom(DAG_GATE, gate.run_id, "deploy")
    checks.equal(
        "quality_gate (under the gate): deploy got the defects from XCom", dict_in(deploy), DEFECTS_OK
    )

    # quality gate: over the gate
    gate_fail = watches["gate_fail"]
    checks.equal("quality_gate (over the gate): DAG run state", gate_fail.state, "failed")
    deferred_checks(checks, gate_fail, "scan_with_gate", airflow_home, "gate-fail-scan")
    checks.equal(
        "quality_gate (over the gate): scan_with_gate state",
        gate_fail.tis["scan_with_gate"]["state"],
        "failed",
    )
    checks.equal(
        "quality_gate (over the gate): deploy state", gate_fail.tis["deploy"]["state"], "upstream_failed"
    )
    checks.equal(
        "quality_gate (over the gate): XCom defects pushed before failing",
        api.xcom(DAG_GATE, gate_fail.run_id, "scan_with_gate", "defects"),
        DEFECTS_BAD,
    )
    task_log = api.task_log(
        DAG_GATE, gate_fail.run_id, "scan_with_gate", gate_fail.tis["scan_with_gate"]["try_number"]
    )
    breach = "failed the quality gate: critical 2 > 0, major 15 > 10"
    checks.check(
        "quality_gate (over the gate): the task log names the breach",
        breach in task_log,
        breach if breach in task_log else task_log[-300:],
    )


def triggerer_restart_scenario(
    checks: Checks,
    api: AirflowApi,
    emulator: Emulator,
    stack: Stack,
    services: dict[str, Service],
    env: dict[str, str],
    airflow_home: Path,
) -> None:
    # Long enough for a new triggerer to start, take the trigger over and still see the scan running.
    emulator.put_task(task_id="restart-scan", duration_s=RESTART_SCAN_S, defects=DEFECTS_OK)
    watch = RunWatch(DAG_RUN_AND_BRANCH, "e2e-triggerer-restart")
    api.trigger(DAG_RUN_AND_BRANCH, watch.run_id, {"codecheck_task_id": "restart-scan"})
    log(f"triggered a {RESTART_SCAN_S} s scan; waiting for the triggerer to poll it")

    def triggerer_polled_twice() -> bool:
        observe(api, emulator, watch)
        return watch.progress_polls_while_deferred("run_scan") >= 2

    wait_until("run_scan deferred and polled by the triggerer", triggerer_polled_twice, 120, 0.4)
    old_jobs = set(watch.triggerer_jobs.get("run_scan", set()))
    old = services["triggerer"]
    log(
        f"killing the triggerer (SIGKILL to pid {old.proc.pid} and its process group) while run_scan is deferred"
    )
    stack.stop(old, signal.SIGKILL, grace=10)
    checks.check(
        "restart: triggerer killed while run_scan was deferred and the scan running",
        old.proc.poll() is not None
        and watch.tis["run_scan"]["state"] == "deferred"
        and emulator.task("restart-scan").get("running") is True,
        f"exit {old.proc.returncode}, run_scan {watch.tis['run_scan']['state']}",
    )
    time.sleep(1)
    polls_at_kill = emulator.progress_requests()
    services["triggerer"] = stack.start("triggerer", [AIRFLOW, "triggerer"], env, "triggerer-2.log")

    watch.triggerer_jobs["run_scan"] = set()
    watch_runs(api, emulator, [watch], timeout=180)
    new_jobs = watch.triggerer_jobs.get("run_scan", set())
    checks.equal("restart: DAG run state", watch.state, "success")
    checks.check(
        "restart: the new triggerer polled the emulator",
        emulator.progress_requests() > polls_at_kill,
        f"{emulator.progress_requests() - polls_at_kill} progress requests after the restart",
    )
    checks.check(
        "restart: a new triggerer job took the trigger over",
        bool(new_jobs - old_jobs),
        f"before {sorted(old_jobs)}, after {sorted(new_jobs)}",
    )
    log_files = glob.glob(
        str(
            airflow_home
            / "logs"
            / f"dag_id={DAG_RUN_AND_BRANCH}"
            / f"run_id={watch.run_id}"
            / "task_id=run_scan"
            / "*.trigger.*"
        )
    )
    checks.check(
        "restart: both triggerer jobs logged the trigger",
        len(log_files) >= 2,
        ", ".join(sorted(os.path.basename(path) for path in log_files)),
    )
    new_job_lines = [
        text
        for path in log_files
        if any(path.endswith(f".trigger.{job}.log") for job in new_jobs - old_jobs)
        for text in event_texts(Path(path).read_text(errors="replace").splitlines())
    ]
    resumed = [text for text in new_job_lines if "CodeArts task restart-scan: checking" in text]
    checks.check(
        "restart: the new triggerer resumed the wait while the scan was still running",
        bool(resumed),
        resumed[0] if resumed else f"new triggerer's trigger log: {new_job_lines}",
    )
    checks.equal("restart: run_scan state", watch.tis["run_scan"]["state"], "success")
    checks.equal("restart: run_scan not retried (try 1)", watch.tis["run_scan"]["try_number"], 1)
    checks.equal("restart: no duplicate scan (emulator runs)", emulator.task("restart-scan").get("runs"), 1)
    checks.equal(
        "restart: run_scan XCom status",
        api.xcom(DAG_RUN_AND_BRANCH, watch.run_id, "run_scan", "status"),
        "success",
    )
    checks.equal("restart: publish state", watch.tis["publish"]["state"], "success")
    checks.equal("restart: report_failure state", watch.tis["report_failure"]["state"], "skipped")


def checkrecord_requests(emulator: Emulator) -> int:
    """Reads of a scan history (``GET /v2/{project}/tasks/{id}/checkrecord``): one per poll of the watcher."""
    return sum(count for key, count in emulator.stats()["requests"].items() if key.startswith("checkrecord "))


def event_runs(api: AirflowApi) -> dict[str, dict[str, Any]]:
    body = api.get(f"/dags/{DAG_EVENT}/dagRuns", params={"limit": 100})
    return {run["dag_run_id"]: run for run in body["dag_runs"]}


def event_driven_scenario(
    checks: Checks,
    api: AirflowApi,
    emulator: Emulator,
    stack: Stack,
    services: dict[str, Service],
    env: dict[str, str],
) -> None:
    """Issue 14 in the full stack: the scheduler starts one run of the event-driven example per finished scan
    of nightly-scan; a triggerer restart between two scans neither replays the first nor loses the second.

    Runs last: it adds checkrecord/progress/defects-summary requests the other scenarios do not expect."""
    # The watcher needs the connection extra project_id (the scan history API has it in its path).
    conn = api.get(f"/connections/{CONN_ID}")
    extra = {**json.loads(conn.get("extra") or "{}"), "project_id": EVENT_PROJECT_ID}
    api.request(
        "PATCH",
        f"/connections/{CONN_ID}",
        params={"update_mask": ["extra"]},
        json={"connection_id": CONN_ID, "conn_type": CONN_TYPE, "extra": json.dumps(extra)},
    )
    checks.equal(
        "event-driven: connection extra project_id set",
        json.loads(api.get(f"/connections/{CONN_ID}").get("extra") or "{}").get("project_id"),
        EVENT_PROJECT_ID,
    )
    wait_until(
        "nightly-scan idle (no scan running)", lambda: not emulator.task(EVENT_TASK).get("running"), 60, 0.5
    )
    checks.equal("event-driven: no run of the DAG before it is unpaused", len(event_runs(api)), 0)

    # The dag-processor attaches a watcher's trigger only to an asset of an unpaused DAG, at the next parse
    # of the file: unpause, then ask for that parse at once (rather than waiting min_file_process_interval).
    records_before = checkrecord_requests(emulator)
    dag = api.request("PATCH", f"/dags/{DAG_EVENT}", json={"is_paused": False})
    api.request("PUT", f"/parseDagFile/{dag['file_token']}", expect=(201,))
    log(
        "unpaused the event-driven DAG and asked for its file to be parsed; waiting for the watcher's first poll"
    )
    wait_until(
        "the watcher's first read of the scan history (its baseline)",
        lambda: checkrecord_requests(emulator) > records_before,
        120 + EVENT_POLL_S,
        0.5,
    )
    assets = api.get("/assets", params={"uri_pattern": EVENT_ASSET_URI})["assets"]
    # Airflow normalises the URI (codecheck://nightly-scan/); the name stays as written.
    asset = next((a for a in assets if a["uri"].rstrip("/") == EVENT_ASSET_URI), None)
    checks.check(
        "event-driven: the asset codecheck://nightly-scan is registered",
        asset is not None,
        f"assets {[a['uri'] for a in assets]}",
    )
    asset_id = asset["id"] if asset else None

    def watermark() -> dict[str, Any] | None:
        if asset_id is None:
            return None
        response = api.http.get(f"/api/v2/assets/{asset_id}/state-store/{WATERMARK_KEY}")
        if response.status_code != 200:
            return None
        value = response.json()["value"]
        return json.loads(value) if isinstance(value, str) else value

    baseline = wait_until("the watcher's watermark in the asset state store", watermark, 30, 0.5)
    checks.check(
        "event-driven: the watcher stored its baseline watermark (earlier scans seen, no event for them)",
        isinstance(baseline, dict) and isinstance(baseline.get("seen"), dict),
        f"{len((baseline or {}).get('seen') or {})} earlier scans in the watermark",
    )

    def wait_for_runs(count: int, what: str) -> dict[str, dict[str, Any]]:
        def done() -> dict[str, dict[str, Any]] | None:
            runs = event_runs(api)
            if len(runs) >= count and all(r["state"] in TERMINAL_RUN_STATES for r in runs.values()):
                return runs
            return None

        return wait_until(what, done, EVENT_POLL_S + 120, 1)

    def publish_checks(label: str, run_id: str, scan_id: str) -> None:
        tis = api.task_instances(DAG_EVENT, run_id)
        checks.equal(
            f"event-driven: {label} run's publish task succeeded",
            (tis.get("publish") or {}).get("state"),
            "success",
        )
        checks.equal(
            f"event-driven: {label} run's publish XCom names {label}",
            api.xcom(DAG_EVENT, run_id, "publish"),
            [scan_id],
        )

    # Scan 1, started "from outside" (a commit): exactly one run, for that scan.
    scan1 = emulator.http.post(
        f"/_emulator/tasks/{EVENT_TASK}/commit", json={"duration_s": 2, "defects": DEFECTS_OK}
    )
    scan1.raise_for_status()
    scan1_id = f"job:{scan1.json()['exec_id']}"
    log(
        f"committed scan 1 ({scan1_id}) of {EVENT_TASK}; waiting up to {EVENT_POLL_S + 120} s for its DAG run"
    )
    runs = wait_for_runs(1, "the DAG run for scan 1")
    time.sleep(3)  # a second (wrong) run would be created at once with the first
    runs = event_runs(api)
    checks.equal("event-driven: scan 1 -> exactly one DAG run", len(runs), 1)
    run1 = next(iter(runs))
    checks.equal(
        "event-driven: scan 1's run is asset-triggered", runs[run1].get("run_type"), "asset_triggered"
    )
    checks.equal("event-driven: scan 1's run state", runs[run1]["state"], "success")
    publish_checks("scan 1", run1, scan1_id)

    # Restart only once the watermark holds scan 1 (it moves at the poll after the event, commit_delay_s
    # later): a restart before that replays scan 1, as documented (at least once).
    wait_until(
        "scan 1 in the stored watermark",
        lambda: scan1_id in ((watermark() or {}).get("seen") or {}),
        EVENT_POLL_S + 30,
        1,
    )
    checks.check("event-driven: the watermark in the asset state store holds scan 1", True, scan1_id)
    old = services["triggerer"]
    log(f"restarting the triggerer (SIGTERM to pid {old.proc.pid}) between the two scans")
    stack.stop(old, signal.SIGTERM, grace=30)
    records_at_stop = checkrecord_requests(emulator)
    services["triggerer"] = stack.start("triggerer", [AIRFLOW, "triggerer"], env, "triggerer-3.log")
    wait_until(
        "the new triggerer's watcher to read the scan history",
        lambda: checkrecord_requests(emulator) > records_at_stop,
        120,
        0.5,
    )
    time.sleep(8)  # a replayed scan 1 would be fired at that first poll and scheduled within seconds
    checks.equal(
        "event-driven: after the triggerer restart, no replay of scan 1 (still one run)",
        len(event_runs(api)),
        1,
    )

    # Scan 2 after the restart: exactly two runs in total, the second for scan 2.
    scan2 = emulator.http.post(
        f"/_emulator/tasks/{EVENT_TASK}/commit", json={"duration_s": 2, "defects": DEFECTS_OK}
    )
    scan2.raise_for_status()
    scan2_id = f"job:{scan2.json()['exec_id']}"
    log(f"committed scan 2 ({scan2_id}); waiting up to {EVENT_POLL_S + 120} s for its DAG run")
    wait_for_runs(2, "the DAG run for scan 2")
    time.sleep(3)
    runs = event_runs(api)
    checks.equal("event-driven: scan 2 -> exactly two DAG runs in total (no replay of scan 1)", len(runs), 2)
    new_runs = [run_id for run_id in runs if run_id != run1]
    if new_runs:
        checks.equal("event-driven: scan 2's run state", runs[new_runs[0]]["state"], "success")
        publish_checks("scan 2", new_runs[0], scan2_id)


# --- main -------------------------------------------------------------------------------------------------


def run_all(checks: Checks, stack: Stack, tmp: Path, screenshot: Path, ui_only: bool = False) -> None:
    t0 = time.monotonic()
    ensure_debian_packages()
    pg = start_postgres(tmp, stack)
    api_port = free_port()
    env = airflow_env(tmp, pg, api_port)
    airflow_home = Path(env["AIRFLOW_HOME"])
    log("airflow db migrate")
    run([AIRFLOW, "db", "migrate"], tmp / "logs" / "db-migrate.log", env=env, cwd=tmp)
    log(f"migrated in {time.monotonic() - t0:.0f}s since start")
    emulator = Emulator(stack, env)
    services = start_airflow(stack, env, api_port)
    api = AirflowApi(
        f"http://127.0.0.1:{api_port}", Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    )
    health = wait_for_health(api, services)
    checks.check(
        "airflow: api-server, scheduler, dag-processor, triggerer healthy",
        True,
        ", ".join(f"{k}={v.get('status')}" for k, v in health.items() if isinstance(v, dict)),
    )
    api.login()
    log(f"stack up in {time.monotonic() - t0:.0f}s")

    def dags_parsed() -> bool:
        return all(api.http.get(f"/api/v2/dags/{dag_id}").status_code == 200 for dag_id in EXAMPLE_DAGS)

    wait_until("the example DAGs to be parsed", dags_parsed, 120, 1)
    errors = api.get("/importErrors")
    checks.equal("dag-processor: no import errors", errors["total_entries"], 0)
    checks.check("dag-processor: the three example DAGs are parsed", True)

    hook_meta = api.http.get("/ui/connections/hook_meta").json()
    ours = [m for m in hook_meta if m.get("connection_type") == CONN_TYPE]
    checks.check("api: /ui/connections/hook_meta lists huaweicloud_codecheck", bool(ours))
    extra_fields = (ours[0].get("extra_fields") or {}) if ours else {}
    checks.equal(
        "api: hook_meta declares security_token as a password field",
        ((extra_fields.get("security_token") or {}).get("schema") or {}).get("format"),
        "password",
    )

    log("connection form in headless Chromium")
    saved = connection_form_check(checks, stack, tmp, api, emulator, screenshot)
    if not saved:
        log("the UI did not save the connection: creating it through the REST API to go on")
        create_connection_via_rest(api, emulator)
    stored_connection_checks(checks, api, emulator)
    auth_failures_before_runs = emulator.stats()["auth_failures"]
    if ui_only:
        return

    log("example DAG runs")
    main_scenarios(checks, api, emulator, airflow_home)
    log("triggerer restart during a deferred wait")
    triggerer_restart_scenario(checks, api, emulator, stack, services, env, airflow_home)
    stats = emulator.stats()
    checks.equal(
        "emulator: no authentication failures during the DAG runs",
        stats["auth_failures"] - auth_failures_before_runs,
        0,
    )
    log(
        f"emulator stats: requests {stats['requests']}, runs {stats['runs']}, iam tokens {stats['iam_tokens_issued']}"
    )
    log("event-driven DAG runs: one per finished scan, a triggerer restart between two scans")
    event_driven_scenario(checks, api, emulator, stack, services, env)


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--ui-only", action="store_true", help="stop after the connection form checks")
    args = parser.parse_args()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="codecheck-e2e-"))
    tmp.chmod(0o755)  # the postgres user must reach its data folder inside
    screenshot = tmp / "connection-form.png"
    log(f"temp folder {tmp}")
    checks = Checks()
    stack = Stack(tmp)
    previous_term = signal.signal(signal.SIGTERM, interrupt)
    try:
        run_all(checks, stack, tmp, screenshot, args.ui_only)
    except KeyboardInterrupt:
        checks.check("run completed", False, "interrupted")
    except Exception as error:
        checks.check("run completed", False, f"{type(error).__name__}: {error}")
    finally:
        log("stopping everything this run started")
        stack.close()
        signal.signal(signal.SIGTERM, previous_term)
    elapsed = time.monotonic() - started
    print()
    cleanup = not checks.failed and not args.keep
    where = "temp folder cleaned up, screenshots kept" if cleanup else f"logs in {tmp / 'logs'}"
    print(f"== e2e summary ({elapsed:.0f}s, {where}) ==")
    for name, ok, detail in checks.results:
        if not ok:
            print(f"  FAILED: {name}{f' ({detail})' if detail else ''}")
    shots = [screenshot.with_name(name) for name in SCREENSHOTS]
    for shot in [path for path in shots if path.exists()] or ["(none taken)"]:
        print(f"  screenshot: {shot}")
    for name, reason in checks.skipped:
        print(f"  skipped: {name} ({reason})")
    if cleanup:
        keep = set(shots)
        for path in tmp.iterdir():
            if path not in keep:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    print(checks.summary())
    return 1 if checks.failed or not checks.results else 0


if __name__ == "__main__":
    sys.exit(main())
