"""Shared pieces of the benchmarks: the emulator process (``airflow_provider_codecheck.testing``), /proc
readings, statistics.

Nothing here imports Airflow, so the orchestrator (``benchmarks.run``) stays light and the measured child
processes decide themselves when Airflow is imported.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from airflow_provider_codecheck import testing

CONN_ID = "codecheck_bench"
CONN_ENV = f"AIRFLOW_CONN_{CONN_ID.upper()}"
EMULATOR_CPU = 0
CLIENT_CPU = 1


def cpu_count() -> int:
    return os.cpu_count() or 1


def can_pin() -> bool:
    return shutil.which("taskset") is not None and cpu_count() > 1 and hasattr(os, "sched_setaffinity")


def taskset(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if can_pin() else command


def raise_fd_limit(needed: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def child_env(base_url: str, ca_file: str, airflow_home: str) -> dict[str, str]:
    """Environment of a measured child: its own AIRFLOW_HOME, the connection as an env var, no DB needed."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": airflow_home,
            CONN_ENV: testing.connection_json(base_url, "password", ca_file=ca_file),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
    )
    return env


@contextmanager
def emulator(tls: bool = True) -> Iterator[testing.EmulatorProcess]:
    """A fresh emulator process (HTTPS), pinned to CPU 0 when taskset is there; stopped with SIGTERM."""
    prefix = ["taskset", "-c", str(EMULATOR_CPU)] if can_pin() else []
    with testing.spawn_emulator(tls=tls, command_prefix=prefix, preexec_fn=raise_fd_limit) as emu:
        yield emu


def add_warmup_and_probe(admin: testing.EmulatorAdmin) -> None:
    """The two tasks every triggerer child needs: "warmup" (finished) and "probe" (running for an hour)."""
    admin.add_task(task_id="warmup", initial_status=2)
    admin.add_task(task_id="probe", duration_s=3600, running=True)


def start_child(command: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """A measured child (``python -m benchmarks...``) on the client CPU, reading orders from its stdin."""
    return subprocess.Popen(
        taskset(CLIENT_CPU, command),
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=repo_root(),
        preexec_fn=raise_fd_limit,
    )


def process_cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds of a process (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- admin API -----------------------------------------------------------------------------------------


def _ssl_context(ca_file: str | None) -> Any:
    import ssl

    return ssl.create_default_context(cafile=ca_file) if ca_file else None


def stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What happened between two ``EmulatorAdmin.stats()`` snapshots, less the connection the second one opened
    (each admin call is one TCP, and TLS, connection)."""
    requests: dict[str, int] = {}
    for key, count in after["requests"].items():
        diff = count - before["requests"].get(key, 0)
        if diff:
            requests[key] = diff
    return {
        "requests": requests,
        "requests_total": after["requests_total"] - before["requests_total"],
        "iam_tokens_issued": after["iam_tokens_issued"] - before["iam_tokens_issued"],
        "auth_failures": after["auth_failures"] - before["auth_failures"],
        "connections": after["connections"] - before["connections"] - 1,
        "tls_handshakes": after["tls_handshakes"] - before["tls_handshakes"] - 1,
    }


route_count = testing.route_requests
"""Requests of a stats delta on a route (and status): ``route_count(delta, "progress", "200")``."""


async def create_tasks_async(
    base_url: str, ca_file: str | None, specs: Sequence[dict[str, Any]], concurrency: int = 16
) -> list[tuple[float, float]]:
    """Create running tasks; returns each task's (monotonic before the POST, after the reply).

    The emulator reads ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for every process on the machine)
    while it handles the POST, so the scan started between the two readings.
    """
    import asyncio

    import aiohttp

    times: list[tuple[float, float]] = [(0.0, 0.0)] * len(specs)
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=_ssl_context(ca_file) or True)
    async with aiohttp.ClientSession(base_url, connector=connector) as session:
        cursor = iter(range(len(specs)))

        async def worker() -> None:
            for index in cursor:
                before = time.monotonic()
                async with session.post("/_emulator/tasks", json=specs[index]) as response:
                    await response.read()
                    if response.status != 201:
                        raise RuntimeError(f"task creation failed: HTTP {response.status}")
                times[index] = (before, time.monotonic())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times


def create_tasks(
    base_url: str, ca_file: str | None, specs: Sequence[dict[str, Any]]
) -> list[tuple[float, float]]:
    import asyncio

    return asyncio.run(create_tasks_async(base_url, ca_file, specs))


# --- /proc/self/status ------------------------------------------------------------------------------------


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (VmRSS, VmHWM); 0 where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


# --- statistics --------------------------------------------------------------------------------------------


def percentile(samples: Sequence[float], fraction: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[rank]


def median(samples: Sequence[float]) -> float:
    import statistics

    return statistics.median(samples) if samples else float("nan")


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


_AIRFLOW_HOME: str | None = None


def temp_airflow_home() -> str:
    """One throw-away AIRFLOW_HOME for all the children of this process (removed when it exits)."""
    global _AIRFLOW_HOME
    if _AIRFLOW_HOME is None:
        import atexit
        import shutil as _shutil

        _AIRFLOW_HOME = tempfile.mkdtemp(prefix="codecheck-bench-airflow-")
        atexit.register(_shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
    return _AIRFLOW_HOME


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
