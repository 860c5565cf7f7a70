"""Poke mode: 100 ``poke()`` calls of one ``CodeCheckTaskSensor`` (mode poke, IAM password auth).

The parent starts a fresh HTTPS emulator with a long-running scan, runs this module as a child (the sensor
in one process, as a worker runs it), and reads IAM token calls, TCP connections and TLS handshakes from the
emulator's stats around it: one keep-alive session and one token should serve every poke.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common

TASK_ID = "poke-bench"


def child(pokes: int, result_file: str) -> int:
    from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor

    sensor = CodeCheckTaskSensor(
        task_id="codecheck_poke_bench",
        codecheck_task_id=TASK_ID,
        codecheck_conn_id=common.CONN_ID,
        mode="poke",
        poke_interval=0.01,
        deferrable=False,
    )
    context: dict[str, Any] = {}
    done = 0
    wall: list[float] = []
    cpu_before = time.process_time()
    for _ in range(pokes):
        started = time.perf_counter()
        outcome = sensor.poke(context)
        wall.append(time.perf_counter() - started)
        done += bool(getattr(outcome, "is_done", outcome))
    cpu = time.process_time() - cpu_before
    Path(result_file).write_text(
        json.dumps(
            {
                "pokes": pokes,
                "done": done,
                "cpu_ms_per_poke": 1000 * cpu / pokes,
                "median_ms_per_poke": 1000 * common.median(wall),
                "first_poke_ms": 1000 * wall[0],
            }
        )
    )
    return 0


def measure(pokes: int = 100, workdir: str | None = None) -> dict[str, Any]:
    work = Path(workdir or common.temp_airflow_home())
    result_file, log_file = work / "poke.json", work / "poke.log"
    with common.emulator(tls=True) as emu:
        emu.admin.add_task(task_id=TASK_ID, duration_s=3600, running=True)
        env = common.child_env(emu.base_url, emu.ca_file, common.temp_airflow_home())
        command = [
            sys.executable,
            "-m",
            "benchmarks.poke",
            "--pokes",
            str(pokes),
            "--result-file",
            str(result_file),
        ]
        before = emu.admin.stats()
        with open(log_file, "wb") as log:
            code = subprocess.run(
                common.taskset(common.CLIENT_CPU, command),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=common.repo_root(),
                timeout=600,
                check=False,
            ).returncode
        after = emu.admin.stats()
    if code != 0:
        raise RuntimeError(f"poke benchmark failed with {code}; see {log_file}")
    delta = common.stats_delta(before, after)
    result: dict[str, Any] = json.loads(result_file.read_text())
    result.update(
        {
            "progress_requests": common.route_count(delta, "progress"),
            "iam_calls": common.route_count(delta, "iam"),
            "iam_tokens_issued": delta["iam_tokens_issued"],
            "connections": delta["connections"],
            "tls_handshakes": delta["tls_handshakes"],
            "requests_by_route": delta["requests"],
        }
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pokes", type=int, default=100)
    parser.add_argument("--result-file", help="child mode: write the figures here")
    args = parser.parse_args(argv)
    if args.result_file:
        return child(args.pokes, args.result_file)
    print(json.dumps(measure(args.pokes), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
