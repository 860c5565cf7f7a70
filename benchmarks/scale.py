"""Triggerer scale: N concurrent waits in ONE event loop in one process, against the emulator over HTTPS.

``measure(variant, n, ...)`` (called by ``benchmarks.run``) does one measurement:

1. starts a fresh emulator (``--tls``), pinned to CPU 0;
2. starts this module as a child process (``python -m benchmarks.scale --variant ...``) pinned to CPU 1; the
   child imports Airflow, runs one warm-up wait (so lazy imports and first-use caches are not counted),
   forgets the IAM token, and says it is ready;
3. creates the N scans (``running: true``, durations uniform over [T/2, T]) through the admin API, reads the
   emulator's stats, and lets the child go;
4. the child starts the N waits at an even rate over one poll interval (as a triggerer picks deferred tasks
   up over time), each one's async generator consumed in its own task as Airflow's ``TriggerRunner.
   run_trigger`` does, while a ticker measures event-loop lag every 10 ms and RSS is tracked; it reports
   CPU time, RSS, lag and the moment each event fired;
5. reads the stats again: requests, IAM tokens, TCP connections and TLS handshakes of the waits.

Variants: ``ours`` (``CodeCheckTaskTrigger``), ``dbt_style`` (baseline a) and ``floor`` (baseline b), see
``benchmarks.baselines``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

from benchmarks import common

VARIANTS = ("ours", "dbt_style", "floor")
TICK_S = 0.010
RSS_EVERY_TICKS = 10


# ----------------------------------------------------------------------------------------------------------
# Child: the measured process.
# ----------------------------------------------------------------------------------------------------------


class GcWatch:
    """Times the cyclic garbage collector's passes (a full pass over Airflow's heap stalls the loop)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.max_s = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self.total_s = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        elapsed = time.perf_counter() - self.started
        generation = info["generation"]
        self.count[generation] += 1
        self.total_s += elapsed
        self.max_s[generation] = max(self.max_s[generation], elapsed)


class LagTicker:
    """Sleeps 10 ms again and again; the overshoot of each sleep is the event loop's lag at that moment."""

    def __init__(self, capacity: int) -> None:
        self.samples = array("d", bytes(8 * capacity))
        self.count = 0
        self.max_rss_kib = 0
        self.stopped = False
        self.cpu_timeline: list[tuple[float, float]] = []  # (monotonic, process_time) about once a second

    async def run(self) -> None:
        perf = time.perf_counter
        samples, capacity, tick = self.samples, len(self.samples), 0
        while not self.stopped:
            started = perf()
            await asyncio.sleep(TICK_S)
            lag = perf() - started - TICK_S
            if self.count < capacity:
                samples[self.count] = lag
                self.count += 1
            tick += 1
            if tick % RSS_EVERY_TICKS == 0:
                self.max_rss_kib = max(self.max_rss_kib, common.status_kib("VmRSS"))
            if tick % 100 == 0:
                self.cpu_timeline.append((round(time.monotonic(), 3), round(time.process_time(), 3)))


def _conn_parts() -> tuple[str, str, str, str, str, str]:
    conn = json.loads(os.environ[common.CONN_ENV])
    extra = conn["extra"]
    return (
        conn["host"],
        extra["ca_bundle"],
        conn["login"],
        conn["password"],
        extra["domain_name"],
        extra["iam_endpoint"],
    )


class Harness:
    """Builds each variant's async generators and the warm-up/reset steps around them."""

    def __init__(self, variant: str, poll: float) -> None:
        self.variant = variant
        self.poll = poll
        self.floor: Any = None
        # Import everything up front: module imports are a fixed cost, not a cost of a waiting trigger.
        import airflow.providers.common.compat.connection
        import airflow.sdk.execution_time.context  # noqa: F401
        import asgiref.sync  # noqa: F401

        if variant == "ours":
            import airflow_provider_codecheck.transport.aio  # noqa: F401
            from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger

            self.trigger_cls: Any = CodeCheckTaskTrigger
        elif variant == "dbt_style":
            from benchmarks.baselines import DbtStyleTrigger

            self.trigger_cls = DbtStyleTrigger
        else:
            from benchmarks.baselines import Floor

            self.floor_cls = Floor

    def make(self, task_id: str, index: int) -> Any:
        """The async generator of one wait (what the triggerer iterates)."""
        if self.variant == "ours":
            trigger = self.trigger_cls(
                codecheck_task_id=task_id,
                codecheck_conn_id=common.CONN_ID,
                poll_interval=self.poll,
                deadline=time.time() + 3600,  # operators always set one; it bounds each poll
                exec_id=f"bench-{index}",
            )
        elif self.variant == "dbt_style":
            trigger = self.trigger_cls(task_id, common.CONN_ID, self.poll)
        else:
            return self.floor.wait(task_id, self.poll)
        trigger.trigger_id = index
        return trigger.run()

    async def open(self) -> None:
        if self.variant == "floor":
            base, ca, login, password, domain, _ = _conn_parts()
            self.floor = self.floor_cls(base, ca)
            await self.floor.start(login, password, domain)

    async def close(self) -> None:
        if self.floor is not None:
            await self.floor.close()
            self.floor = None

    def forget_tokens(self) -> None:
        if self.variant == "ours":
            from airflow_provider_codecheck.core import iam

            iam.TOKEN_CACHE.clear()
        elif self.variant == "dbt_style":
            from benchmarks.baselines import reset_caches

            reset_caches()


def _payload_status(event: Any) -> str:
    payload = getattr(event, "payload", event)
    return str(payload.get("status")) if isinstance(payload, dict) else repr(payload)


async def _consume(stream: Any, index: int, fired: array, statuses: list[str | None]) -> None:
    """One trigger as ``TriggerRunner.run_trigger`` drives it: iterate its events, then let it clean up."""
    async for event in stream:
        fired[index] = time.monotonic()
        statuses[index] = _payload_status(event)
    await stream.aclose()


async def _warm_up(harness: Harness, task_id: str) -> None:
    await harness.open()
    fired = array("d", [0.0])
    statuses: list[str | None] = [None]
    await _consume(harness.make(task_id, -1), 0, fired, statuses)
    await harness.close()
    if statuses[0] != "success":
        raise RuntimeError(f"warm-up wait ended with {statuses[0]!r}")
    # Let the warm-up's session finish closing (aiohttp closes TLS transports on the next loop turns).
    await asyncio.sleep(0.5)


async def _cpu_ms_per_call(call: Any, samples: int) -> float:
    started = time.process_time()
    for _ in range(samples):
        await call()
    return 1000 * (time.process_time() - started) / samples


async def _anatomy(harness: Harness, task_id: str, samples: int = 200) -> dict[str, float]:
    """CPU ms of the pieces of one poll, measured one call after another (no concurrency) before the run.

    ``task_id`` is a finished scan, so every poll gets the same small reply. These requests happen before the
    parent's first stats snapshot and are not counted in the run's figures.
    """
    figures: dict[str, float] = {}
    if harness.variant == "ours":
        from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook

        trigger = harness.trigger_cls(
            codecheck_task_id=task_id,
            codecheck_conn_id=common.CONN_ID,
            poll_interval=harness.poll,
            deadline=time.time() + 3600,
        )
        async with CodeCheckHook(common.CONN_ID).async_client() as client:
            await client.get_task_progress(task_id)
            figures["transport_poll"] = await _cpu_ms_per_call(
                lambda: client.get_task_progress(task_id), samples
            )
            if hasattr(trigger, "_poll"):  # the trigger's own poll: transport + bounding it by the deadline
                figures["trigger_poll"] = await _cpu_ms_per_call(
                    lambda: trigger._poll(client, 3600.0), samples
                )
        line = "checking (task_status=0, ratio=42%, info='running')"
        started = time.process_time()
        for _ in range(samples):
            trigger.log.info("CodeArts task %s: %s", task_id, line)
        figures["log_line"] = 1000 * (time.process_time() - started) / samples
        figures["trigger_start"] = await _cpu_ms_per_call(
            lambda: CodeCheckHook(common.CONN_ID).aget_settings(), samples
        )
    elif harness.variant == "floor":
        await harness.open()
        url = f"{harness.floor.base_url}/v2/tasks/{task_id}/progress"
        figures["floor_poll"] = await _cpu_ms_per_call(lambda: harness.floor._status(url), samples)
        await harness.close()
    else:
        trigger = harness.trigger_cls(task_id, common.CONN_ID, harness.poll)
        await trigger.get_status()
        figures["dbt_style_poll"] = await _cpu_ms_per_call(trigger.get_status, samples // 3)
    await asyncio.sleep(0.5)  # let closed sessions finish closing
    return figures


async def _idle_ticker_cost(seconds: float = 1.5) -> float:
    """CPU ms per second of the lag ticker alone on an idle loop (each wake-up from idle has a price here)."""
    ticker = LagTicker(capacity=int(seconds / TICK_S) + 100)
    started = time.process_time()
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(seconds)
    ticker.stopped = True
    await task
    return 1000 * (time.process_time() - started) / seconds


async def _measured(harness: Harness, task_ids: list[str], stagger_s: float, max_s: float) -> dict[str, Any]:
    n = len(task_ids)
    fired = array("d", bytes(8 * n))
    started = array("d", bytes(8 * n))
    statuses: list[str | None] = [None] * n
    tasks: list[asyncio.Task[None] | None] = [None] * n
    ticker = LagTicker(capacity=int((max_s + 60) / TICK_S))
    gc.collect()
    gc_watch = GcWatch()
    gc.callbacks.append(gc_watch)
    common.reset_peak_rss()
    rss_before = common.status_kib("VmRSS")
    ticker.max_rss_kib = rss_before
    cpu_before = time.process_time()
    wall_before = time.monotonic()
    ticker_task = asyncio.create_task(ticker.run())
    await harness.open()

    # Start the waits at an even rate over `stagger_s`, in small batches every 5 ms.
    t0 = time.monotonic()
    created = 0
    while created < n:
        due = n if stagger_s <= 0 else min(n, int((time.monotonic() - t0) / stagger_s * n) + 1)
        while created < due:
            started[created] = time.monotonic()
            stream = harness.make(task_ids[created], created)
            tasks[created] = asyncio.create_task(_consume(stream, created, fired, statuses))
            created += 1
        if created < n:
            await asyncio.sleep(0.005)
    all_started = time.monotonic()
    done, pending = await asyncio.wait([t for t in tasks if t is not None], timeout=max_s)
    for task in pending:
        task.cancel()
    errors = [repr(t.exception()) for t in done if not t.cancelled() and t.exception() is not None]
    await harness.close()
    cpu_after = time.process_time()
    wall_after = time.monotonic()
    ticker.stopped = True
    await ticker_task
    gc.callbacks.remove(gc_watch)
    peak = max(common.status_kib("VmHWM"), ticker.max_rss_kib)
    lags = list(ticker.samples[: ticker.count])
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return {
        "n": n,
        "started": list(started),
        "fired": list(fired),
        "statuses": counts,
        "timed_out": len(pending),
        "errors": errors[:5],
        "cpu_s": cpu_after - cpu_before,
        "wall_s": wall_after - wall_before,
        "start_spread_s": all_started - t0,
        "rss_before_kib": rss_before,
        "peak_rss_kib": peak,
        "lag_max_ms": 1000 * max(lags) if lags else float("nan"),
        "lag_p99_ms": 1000 * common.percentile(lags, 0.99),
        "lag_p999_ms": 1000 * common.percentile(lags, 0.999),
        "lag_median_ms": 1000 * common.percentile(lags, 0.5),
        "lag_samples": len(lags),
        "cpu_timeline": ticker.cpu_timeline,
        "gc_counts": gc_watch.count,
        "gc_max_ms": [round(1000 * s, 1) for s in gc_watch.max_s],
        "gc_total_s": gc_watch.total_s,
        "gc_objects_after": len(gc.get_objects()),
    }


def child_main(args: argparse.Namespace) -> int:
    common.raise_fd_limit()
    harness = Harness(args.variant, args.poll)
    asyncio.run(_warm_up(harness, args.warmup_task))
    anatomy = asyncio.run(_anatomy(harness, args.warmup_task))
    anatomy["ticker_per_s"] = asyncio.run(_idle_ticker_cost())
    harness.forget_tokens()
    gc.collect()
    Path(args.ready_file).write_text("ready")
    spec_path = sys.stdin.readline().strip()  # the parent created the scans: go
    task_ids = json.loads(Path(spec_path).read_text())
    if args.profile:  # development aid: where does the CPU go?
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(asyncio.run, _measured(harness, task_ids, args.stagger, args.max_wait))
        profiler.dump_stats(args.profile)
    else:
        result = asyncio.run(_measured(harness, task_ids, args.stagger, args.max_wait))
    result["anatomy_ms"] = anatomy
    partial = Path(args.result_file + ".part")
    partial.write_text(json.dumps(result))
    partial.rename(args.result_file)  # the parent reads the emulator's stats as soon as this appears
    if (
        sys.stdin.readline().strip() == "probe"
    ):  # the parent has its stats: count what a waiting trigger holds
        probe = asyncio.run(_probe(harness, args.probe_task, PROBE_WAITS))
        Path(args.result_file + ".probe").write_text(json.dumps(probe))
    return 0


PROBE_WAITS = 500


async def _probe(harness: Harness, task_id: str, n: int) -> dict[str, float]:
    """GC-tracked objects and their bytes (``sys.getsizeof``) per waiting trigger: ``n`` waits on a long scan,
    counted once each has polled and gone to sleep. Runs after the measurement, so it disturbs none of it."""
    await harness.open()
    gc.collect()
    before = gc.get_objects()
    known = {id(obj) for obj in before}
    count_before = len(before)
    del before
    fired = array("d", bytes(8 * n))
    statuses: list[str | None] = [None] * n
    tasks = [asyncio.create_task(_consume(harness.make(task_id, i), i, fired, statuses)) for i in range(n)]
    await asyncio.sleep(min(3.0, harness.poll / 2))  # every wait has started, polled once and sleeps
    gc.collect()
    after = gc.get_objects()
    new = [obj for obj in after if id(obj) not in known and obj is not known]
    figures = {
        "waits": n,
        "objects_per_wait": (len(after) - count_before) / n,
        "bytes_per_wait": sum(sys.getsizeof(obj) for obj in new) / n,
        "fired_early": sum(1 for t in fired if t),
    }
    del after, new
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await harness.close()
    return figures


# ----------------------------------------------------------------------------------------------------------
# Parent: one measurement, as called by benchmarks.run.
# ----------------------------------------------------------------------------------------------------------


def task_specs(n: int, span_s: float, seed: int, prefix: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "task_id": f"{prefix}-{i}",
            "duration_s": round(rng.uniform(span_s / 2, span_s), 3),
            "final_status": 2,
            "running": True,
        }
        for i in range(n)
    ]


def _wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise RuntimeError(f"benchmark child exited early with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark child was not ready in time")
        time.sleep(0.05)


def measure(
    variant: str,
    n: int,
    poll: float,
    span_s: float,
    seed: int = 7,
    workdir: str | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """One measurement of ``variant`` with ``n`` waits; returns the figures (see ``summarize``)."""
    work = Path(workdir or tempfile.mkdtemp(prefix="codecheck-bench-"))
    tag = f"{variant}-{n}"
    ready, result_file, spec_file = work / f"{tag}.ready", work / f"{tag}.json", work / f"{tag}.tasks.json"
    log_file = work / f"{tag}.log"
    for stale in (ready, result_file, spec_file, Path(f"{result_file}.probe")):
        stale.unlink(missing_ok=True)
    max_wait = span_s + 6 * poll + 120
    with common.emulator(tls=True) as emu:
        common.add_warmup_and_probe(emu.admin)
        command = [
            sys.executable,
            "-m",
            "benchmarks.scale",
            "--variant",
            variant,
            "--poll",
            str(poll),
            "--stagger",
            str(poll),
            "--max-wait",
            str(max_wait),
            "--warmup-task",
            "warmup",
            "--probe-task",
            "probe",
            "--ready-file",
            str(ready),
            "--result-file",
            str(result_file),
            *(["--profile", profile] if profile else []),
        ]
        env = common.child_env(emu.base_url, emu.ca_file, common.temp_airflow_home())
        with open(log_file, "wb") as log:
            child = common.start_child(command, env, log)
            try:
                _wait_for_file(ready, child, timeout=120)
                specs = task_specs(n, span_s, seed, prefix=variant)
                creation = common.create_tasks(emu.base_url, emu.ca_file, specs)
                before = emu.admin.stats()
                emu_cpu_before = common.process_cpu_seconds(emu.pid)
                spec_file.write_text(json.dumps([spec["task_id"] for spec in specs]))
                assert child.stdin is not None
                child.stdin.write(f"{spec_file}\n".encode())
                child.stdin.flush()
                _wait_for_file(result_file, child, timeout=max_wait + 120)
                emu_cpu = (common.process_cpu_seconds(emu.pid) or 0.0) - (emu_cpu_before or 0.0)
                after = emu.admin.stats()
                child.stdin.write(b"probe\n")
                child.stdin.flush()
                code = child.wait(timeout=120)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        if code != 0:
            raise RuntimeError(f"benchmark child {tag} failed with {code}; see {log_file}")
    raw = json.loads(result_file.read_text())
    probe_file = Path(str(result_file) + ".probe")
    raw["probe"] = json.loads(probe_file.read_text()) if probe_file.exists() else {}
    return summarize(
        variant, poll, specs, creation, raw, common.stats_delta(before, after), emu_cpu, common.can_pin()
    )


def summarize(
    variant: str,
    poll: float,
    specs: list[dict[str, Any]],
    creation: list[tuple[float, float]],
    raw: dict[str, Any],
    delta: dict[str, Any],
    emulator_cpu_s: float,
    pinned: bool,
) -> dict[str, Any]:
    n = raw["n"]
    ideal = 0
    latencies: list[float] = []
    uncertainty = 0.0
    for i, spec in enumerate(specs):
        before, after = creation[i]
        end = (before + after) / 2 + spec["duration_s"]  # the scan started between before and after
        uncertainty = max(uncertainty, (after - before) / 2)
        remaining = end - raw["started"][i]
        # A poller with period P started at s needs ceil((end - s) / P) + 1 polls to see the end.
        ideal += (math.ceil(remaining / poll) if remaining > 0 else 0) + 1
        if raw["fired"][i] > 0:
            latencies.append(raw["fired"][i] - end)
    polls = common.route_count(delta, "progress")
    polls_ok = common.route_count(delta, "progress", "200")
    iam = common.route_count(delta, "iam")
    requests = delta["requests_total"]
    return {
        "variant": variant,
        "n": n,
        "poll_s": poll,
        "ideal_polls": ideal,
        "requests": requests,
        "progress_polls": polls,
        "progress_non_200": polls - polls_ok,
        "requests_per_ideal": requests / ideal if ideal else float("nan"),
        "iam_calls": iam,
        "iam_tokens_issued": delta["iam_tokens_issued"],
        "connections": delta["connections"],
        "tls_handshakes": delta["tls_handshakes"],
        "auth_failures": delta["auth_failures"],
        "cpu_s": raw["cpu_s"],
        "cpu_ms_per_1000_polls": 1e6 * raw["cpu_s"] / polls if polls else float("nan"),
        "wall_s": raw["wall_s"],
        "emulator_cpu_s": emulator_cpu_s,
        "pinned": pinned,
        "lag_max_ms": raw["lag_max_ms"],
        "lag_p99_ms": raw["lag_p99_ms"],
        "lag_p999_ms": raw["lag_p999_ms"],
        "lag_median_ms": raw["lag_median_ms"],
        "rss_before_mib": raw["rss_before_kib"] / 1024,
        "peak_rss_mib": raw["peak_rss_kib"] / 1024,
        "rss_kib_per_trigger": (raw["peak_rss_kib"] - raw["rss_before_kib"]) / n,
        "latency_median_s": common.median(latencies),
        "latency_p99_s": common.percentile(latencies, 0.99),
        "latency_max_s": max(latencies) if latencies else float("nan"),
        "end_uncertainty_ms": 1000 * uncertainty,
        "statuses": raw["statuses"],
        "timed_out": raw["timed_out"],
        "errors": raw["errors"],
        "start_spread_s": raw["start_spread_s"],
        "gc_counts": raw["gc_counts"],
        "gc_max_ms": raw["gc_max_ms"],
        "gc_total_s": raw["gc_total_s"],
        "gc_objects": raw["gc_objects_after"],
        "requests_by_route": delta["requests"],
        "anatomy_ms": raw["anatomy_ms"],
        "objects_per_wait": raw["probe"].get("objects_per_wait"),
        "bytes_per_wait": raw["probe"].get("bytes_per_wait"),
        "ticker_cpu_ms_per_s": raw["anatomy_ms"]["ticker_per_s"],
        "cpu_ms_per_1000_polls_net_of_ticker": (
            1e6 * (raw["cpu_s"] - raw["wall_s"] * raw["anatomy_ms"]["ticker_per_s"] / 1000) / polls
            if polls
            else float("nan")
        ),
        "start_cpu_ms": raw["anatomy_ms"].get("trigger_start"),
        "cpu_ms_per_1000_polls_without_starts": (
            1e6 * (raw["cpu_s"] - n * raw["anatomy_ms"]["trigger_start"] / 1000) / polls
            if polls and "trigger_start" in raw["anatomy_ms"]
            else None
        ),
        "creation_s": creation[-1][1] - creation[0][0] if creation else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--poll", type=float, required=True)
    parser.add_argument("--stagger", type=float, required=True)
    parser.add_argument("--max-wait", type=float, required=True)
    parser.add_argument("--warmup-task", required=True)
    parser.add_argument("--probe-task", required=True)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--result-file", required=True)
    parser.add_argument("--profile", help="write a cProfile of the measured phase here")
    return child_main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
