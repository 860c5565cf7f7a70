"""Load check of the CodeArts Check emulator: many concurrent polling clients against one emulator core.

Starts the CLI (pinned to CPU 0 with ``taskset`` when available), pins this process to another CPU, then runs
N concurrent aiohttp clients, each on its own TCP connection, each polling ``progress`` several times.
Prints errors, requests/s and latency percentiles.

    .venv/bin/python -m benchmarks.emulator_load [--clients 2000] [--polls 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

from airflow_provider_codecheck import testing
from benchmarks import common


async def client(
    base_url: str, token: str, task_id: str, polls: int, latencies: list[float], errors: Counter[str]
) -> None:
    # One connector per client: each client holds its own TCP connection, as separate workers would.
    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:
        for _ in range(polls):
            started = time.perf_counter()
            try:
                async with session.get(
                    f"/v2/tasks/{task_id}/progress", headers={"X-Auth-Token": token}
                ) as response:
                    body = await response.json()
                    if response.status != 200 or "task_status" not in body:
                        errors[f"HTTP {response.status}"] += 1
                        continue
            except (TimeoutError, aiohttp.ClientError) as err:
                errors[type(err).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)


async def load(admin: testing.EmulatorAdmin, clients: int, polls: int, tasks: int) -> dict[str, Any]:
    for index in range(tasks):
        admin.add_task(task_id=f"load-{index}", duration_s=3600, running=True)
    token = admin.issue_token(lifetime_s=3600)
    admin.set_faults([])
    base_url = admin.base_url

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    started = time.perf_counter()
    await asyncio.gather(
        *(client(base_url, token, f"load-{i % tasks}", polls, latencies, errors) for i in range(clients))
    )
    elapsed = time.perf_counter() - started

    stats = admin.stats()
    return {
        "clients": clients,
        "requests_ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * common.percentile(latencies, 0.50), 2) if latencies else float("nan"),
        "p99_ms": round(1000 * common.percentile(latencies, 0.99), 2) if latencies else float("nan"),
        "mean_ms": round(1000 * statistics.fmean(latencies), 2) if latencies else float("nan"),
        "server_connections": stats["connections"],
        "server_requests_total": stats["requests_total"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--polls", type=int, default=5, help="progress polls per client")
    parser.add_argument("--tasks", type=int, default=50, help="distinct running tasks polled")
    args = parser.parse_args()

    common.raise_fd_limit(2 * args.clients + 256)  # inherited by the emulator child as well
    pinned = common.can_pin()
    with common.emulator(tls=False) as emulator:
        if pinned:
            os.sched_setaffinity(0, {common.CLIENT_CPU})  # keep the load generator off the emulator's core
        cpu_before = common.process_cpu_seconds(emulator.pid)
        result = asyncio.run(load(emulator.admin, args.clients, args.polls, args.tasks))
        cpu_after = common.process_cpu_seconds(emulator.pid)
        if cpu_before is not None and cpu_after is not None:
            busy = cpu_after - cpu_before
            result["server_cpu_s"] = round(busy, 2)
            result["server_cpu_util"] = f"{100 * busy / result['elapsed_s']:.0f}%"
            result["server_capacity_req_per_cpu_s"] = (
                round(result["requests_ok"] / busy, 1) if busy else "n/a"
            )
        exit_code = emulator.stop()
    print(
        f"emulator: {emulator.base_url} (pinned to CPU {common.EMULATOR_CPU}: {pinned}), exit code {exit_code}"
    )
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    return 0 if result["errors"] == 0 and exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
