"""``make bench``: run every benchmark side by side and write BENCHMARKS.md from the figures.

    python -m benchmarks.run [--quick] [--only scale,parse,poke] [--output BENCHMARKS.md]

1. Triggerer scale (``benchmarks.scale``): ours, baseline (a) dbt-cloud style and baseline (b) floor at each N.
2. Parse-time cost (``benchmarks.parse_time``): ours beside apache-airflow-providers-dbt-cloud, which lives in
   a separate venv, ``.venv-bench`` (created here from ``benchmarks/requirements.txt`` with the Airflow 3.3
   constraints; never installed into ``.venv``).
3. Poke mode (``benchmarks.poke``).

``--quick`` uses small N and short scans, for development; its BENCHMARKS.md says so.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common, parse_time, poke, scale

ROOT = common.repo_root()
BENCH_VENV = ROOT / ".venv-bench"
REQUIREMENTS = ROOT / "benchmarks" / "requirements.txt"
CONSTRAINTS = ROOT / "constraints" / "airflow-3.3.txt"

# Full run: every wait polls every POLL_S; scans last uniform [SPAN_S/2, SPAN_S]; waits start over one POLL_S.
FULL = {"ns": [1000, 5000, 10000], "dbt_ns": [1000], "poll": 20.0, "span": 60.0, "parse_runs": 7}
QUICK = {"ns": [200, 1000], "dbt_ns": [200], "poll": 5.0, "span": 15.0, "parse_runs": 3}

TARGETS = {
    "requests_per_ideal": 1.05,
    "iam_calls": 1,
    "tls_handshakes": 100,
    "cpu_vs_a": 1 / 3,
    "cpu_vs_b": 1.5,
    "lag_max_ms": 20.0,
    "rss_kib_per_trigger": 10.0,
    "parse_ms": 10.0,
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the benchmark venv -------------------------------------------------------------------------------------


def ensure_bench_venv() -> Path | None:
    """Create or refresh .venv-bench (dbt-cloud provider) when its inputs changed; None when it cannot be."""
    python = BENCH_VENV / "bin" / "python"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()
    stamp = BENCH_VENV / ".installed"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    uv = Path(sys.executable).with_name("uv")
    uv_command = [str(uv)] if uv.exists() else ([shutil.which("uv")] if shutil.which("uv") else None)
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        if uv_command is not None:
            install = [*uv_command, "pip", "install", "--quiet", "--python", str(python)]
        else:
            install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*install, "-c", str(CONSTRAINTS), "-r", str(REQUIREMENTS)], check=True, cwd=ROOT)
    except (OSError, subprocess.CalledProcessError) as error:
        log(f"could not set up {BENCH_VENV.name}: {error}; the dbt-cloud parse-time column is skipped")
        return None
    stamp.write_text(digest)
    return python


def pinned_version(package: str) -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        if line.startswith(package + "=="):
            return line.split("==", 1)[1].strip()
    return "?"


# --- formatting helpers --------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    return str(value)


def met(ok: bool | None) -> str:
    if ok is None:
        return "n/a"
    return "✅ met" if ok else "❌ missed"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- running ------------------------------------------------------------------------------------------------


def run_scale(config: dict[str, Any], workdir: str) -> list[dict[str, Any]]:
    results = []
    for n in config["ns"]:
        variants = ["ours", "floor"] + (["dbt_style"] if n in config["dbt_ns"] else [])
        for variant in variants:
            load = common.load_average()
            log(
                f"scale: {variant} N={n} (poll {config['poll']:g}s, scans {config['span'] / 2:g}-{config['span']:g}s)"
            )
            started = time.monotonic()
            result = scale.measure(variant, n, config["poll"], config["span"], workdir=workdir)
            result["run_s"] = time.monotonic() - started
            result["load_before"] = load
            result["load_after"] = common.load_average()
            log(
                f"  requests/ideal {result['requests_per_ideal']:.3f}, IAM {result['iam_calls']}, "
                f"handshakes {result['tls_handshakes']}, CPU {result['cpu_ms_per_1000_polls']:.0f} ms/1000 polls, "
                f"max lag {result['lag_max_ms']:.1f} ms, {result['rss_kib_per_trigger']:.1f} KiB/trigger, "
                f"{result['run_s']:.0f}s"
            )
            results.append(result)
    return results


def run_parse(config: dict[str, Any], bench_python: Path | None) -> list[dict[str, Any]]:
    subjects = [
        ("ours: operators.codecheck", sys.executable, "airflow_provider_codecheck.operators.codecheck"),
        ("ours: sensors.codecheck", sys.executable, "airflow_provider_codecheck.sensors.codecheck"),
    ]
    if bench_python is not None:
        subjects += [
            ("dbt-cloud: operators.dbt", str(bench_python), "airflow.providers.dbt.cloud.operators.dbt"),
            ("dbt-cloud: sensors.dbt", str(bench_python), "airflow.providers.dbt.cloud.sensors.dbt"),
        ]
    log(f"parse time: {len(subjects)} modules x {config['parse_runs']} fresh interpreters")
    results = parse_time.measure(subjects, runs=config["parse_runs"])
    for row in results:
        log(f"  {row['label']}: median {row['median_ms']:.1f} ms, aiohttp imported: {row['aiohttp']}")
    return results


def run_poke(workdir: str) -> dict[str, Any]:
    log("poke mode: 100 pokes")
    result = poke.measure(100, workdir=workdir)
    log(
        f"  IAM {result['iam_calls']}, connections {result['connections']}, handshakes {result['tls_handshakes']}"
    )
    return result


# --- the report ---------------------------------------------------------------------------------------------


def by(results: list[dict[str, Any]], variant: str, n: int) -> dict[str, Any] | None:
    for result in results:
        if result["variant"] == variant and result["n"] == n:
            return result
    return None


def baseline_a_for(results: list[dict[str, Any]], n: int) -> dict[str, Any] | None:
    """(a) at the same N, else at the largest N it ran at (its per-poll cost does not depend on N)."""
    same = by(results, "dbt_style", n)
    if same is not None:
        return same
    runs = [r for r in results if r["variant"] == "dbt_style"]
    return max(runs, key=lambda r: r["n"]) if runs else None


def scale_section(results: list[dict[str, Any]], config: dict[str, Any]) -> tuple[str, list[list[str]]]:
    poll, span = config["poll"], config["span"]
    out = [
        "## 1. Triggerer scale",
        "",
        f"N concurrent waits in ONE asyncio event loop in one process (pinned to CPU {common.CLIENT_CPU}), against the "
        f"emulator over HTTPS in its own process (pinned to CPU {common.EMULATOR_CPU}), IAM password auth. Each wait is "
        "an async generator consumed in its own task, as Airflow 3.3's `TriggerRunner.run_trigger` does "
        "(`async for event in trigger.run()`, no greenback portal, no supervisor comms). Each scan is created "
        f"running with a duration drawn uniformly from [{span / 2:g} s, {span:g} s]; poll interval P = {poll:g} s; the "
        f"N waits start at an even rate over one poll interval ({poll:g} s), as a triggerer picks deferred tasks up "
        "over time. Every measurement is a fresh emulator and a fresh process; each process first runs one warm-up "
        "wait (imports, first-use caches), then forgets its IAM token. Variants:",
        "",
        "* **ours**: `CodeCheckTaskTrigger` (deadline set, as the operator sets it), Airflow logging at INFO to a "
        "file (it logs one progress line per poll while the ratio moves).",
        "* **(a) dbt-cloud style** (`benchmarks/baselines.py`): per poll, looks the connection up "
        "(`get_async_connection`) and opens a NEW `aiohttp.ClientSession`, logs one line; same IAM password "
        "token, cached per process behind a lock (kind to the baseline: 1 IAM call; the CA `SSLContext` is built "
        "once). dbt-cloud 4.11.1 itself now caches the connection per hook instance; the new session per poll "
        "remains.",
        "* **(b) floor**: one shared keep-alive `aiohttp` session (limit 100, as ours), token fetched once, "
        "`response.json()` and a status check, no logging.",
        "",
        "Definitions: *ideal polls* = Σ over waits of (⌈(scan end - wait start) / P⌉ + 1), the polls a poller with "
        "period P needs to see the end (scan end from `time.monotonic()` around the admin call that started it: "
        "`CLOCK_MONOTONIC` is one clock for both processes); *requests* = every request the emulator counted "
        "during the waits (progress + IAM); *CPU* = `time.process_time()` of the trigger process from the first "
        "wait's start to the last event (includes the 10 ms lag ticker and trigger starts); *max lag* = largest "
        "overshoot of a 10 ms `asyncio.sleep` ticker; *RSS per waiting trigger* = (peak RSS during the waits - "
        "RSS just before creating them) / N, peak = max(VmHWM after resetting it via `/proc/self/clear_refs`, "
        "VmRSS sampled every 100 ms); *event latency* = event time - the scan's scheduled end (with polls every "
        f"P it is ≈ uniform over [0, P]: median ≈ {poll / 2:g} s is the poll phase, not overhead). Connections and "
        "handshakes come from the emulator's stats, less the stats call's own.",
        "",
    ]
    target_rows: list[list[str]] = []
    for n in sorted({r["n"] for r in results}):
        ours, floor = by(results, "ours", n), by(results, "floor", n)
        dbt = by(results, "dbt_style", n)
        a_ref = baseline_a_for(results, n)
        columns = [("ours", ours), ("(a) dbt-cloud style", dbt), ("(b) floor", floor)]
        columns = [(name, r) for name, r in columns if r is not None]

        def row(
            label: str, key: str, digits: int = 1, cols: list[tuple[str, dict[str, Any] | None]] = columns
        ) -> list[str]:
            return [label] + [fmt(r.get(key) if r else None, digits) for _, r in cols]

        rows = [
            row("waits (N)", "n"),
            row("all events `success`", "statuses"),
            row("ideal polls", "ideal_polls"),
            row("requests (progress + IAM)", "requests"),
            row("requests ÷ ideal", "requests_per_ideal", 3),
            row("IAM token calls", "iam_calls"),
            row("TCP connections", "connections"),
            row("TLS handshakes", "tls_handshakes"),
            row("CPU s (trigger process)", "cpu_s", 2),
            row("CPU ms per 1,000 polls", "cpu_ms_per_1000_polls", 0),
            row("… of which per trigger start: connection lookup, ms", "start_cpu_ms", 2),
            row(
                "CPU ms per 1,000 polls without the starts (est.)", "cpu_ms_per_1000_polls_without_starts", 0
            ),
            row("max event-loop lag, ms", "lag_max_ms"),
            row("p99 / p99.9 lag, ms", "lag_p99_ms"),
            row("gen-2 GC passes / longest, ms", "gc_counts"),
            row("peak RSS - RSS before, per waiting trigger, KiB", "rss_kib_per_trigger"),
            row("event latency after scan end: median, s", "latency_median_s", 2),
            row("event latency: p99, s", "latency_p99_s", 2),
            row("emulator CPU s", "emulator_cpu_s", 2),
            row("run wall time, s", "run_s", 0),
            row("load average before → after", "load_before", 2),
        ]
        for i, (_name, r) in enumerate(columns):
            if r is None:
                continue
            rows[1][i + 1] = (
                "yes" if r["statuses"] == {"success": n} and not r["timed_out"] else f"no: {r['statuses']}"
            )
            rows[13][i + 1] = f"{r['lag_p99_ms']:.1f} / {r['lag_p999_ms']:.1f}"
            rows[14][i + 1] = f"{r['gc_counts'][2]} / {r['gc_max_ms'][2]:.0f}"
            rows[20][i + 1] = f"{r['load_before']:.2f} → {r['load_after']:.2f}"
        out += [f"### N = {n:,}", "", table(["figure", *[name for name, _ in columns]], rows), ""]
        if dbt is None and a_ref is not None:
            out += [
                f"(a) did not run at N = {n:,}; CPU comparisons with (a) use its N = {a_ref['n']:,} run (its cost per "
                "poll is a new session, handshake and connection lookup each time, independent of N).",
                "",
            ]
        if ours is None:
            continue
        cpu = ours["cpu_ms_per_1000_polls"]
        vs_a = cpu / a_ref["cpu_ms_per_1000_polls"] if a_ref else None
        vs_b = cpu / floor["cpu_ms_per_1000_polls"] if floor else None
        target_rows += [
            [
                f"{n:,}",
                "requests ÷ ideal",
                f"≤ {TARGETS['requests_per_ideal']}",
                fmt(ours["requests_per_ideal"], 3),
                met(ours["requests_per_ideal"] <= TARGETS["requests_per_ideal"]),
            ],
            [
                f"{n:,}",
                "IAM token calls",
                "1",
                fmt(ours["iam_calls"]),
                met(ours["iam_calls"] == TARGETS["iam_calls"]),
            ],
            [
                f"{n:,}",
                "TLS handshakes",
                "≤ 100 (pool size)",
                fmt(ours["tls_handshakes"]),
                met(ours["tls_handshakes"] <= TARGETS["tls_handshakes"]),
            ],
            [
                f"{n:,}",
                "CPU per poll ÷ (a)" + ("" if dbt else f" (a at N={a_ref['n']:,})" if a_ref else ""),
                "≤ 0.333",
                fmt(vs_a, 3),
                met(None if vs_a is None else vs_a <= TARGETS["cpu_vs_a"]),
            ],
            [
                f"{n:,}",
                "CPU per poll ÷ (b)",
                "≤ 1.5",
                fmt(vs_b, 3),
                met(None if vs_b is None else vs_b <= TARGETS["cpu_vs_b"]),
            ],
            [
                f"{n:,}",
                "max event-loop lag",
                "≤ 20 ms",
                fmt(ours["lag_max_ms"]) + " ms",
                met(ours["lag_max_ms"] <= TARGETS["lag_max_ms"]),
            ],
            [
                f"{n:,}",
                "RSS per waiting trigger",
                "≤ 10 KiB",
                fmt(ours["rss_kib_per_trigger"]) + " KiB",
                met(ours["rss_kib_per_trigger"] <= TARGETS["rss_kib_per_trigger"]),
            ],
        ]
    return "\n".join(out), target_rows


def parse_section(results: list[dict[str, Any]], runs: int) -> tuple[str, list[list[str]]]:
    rows, target_rows = [], []
    for r in results:
        tops = ", ".join(f"`{name}` {ms:.1f}" for name, ms in r["top_imports"][:4])
        rows.append(
            [
                f"`{r['module']}`",
                f"{r['median_ms']:.1f} ({r['min_ms']:.0f}-{r['max_ms']:.0f})",
                fmt(r["new_modules"]),
                fmt(r["aiohttp"]),
                fmt(r["requests"]),
                tops,
            ]
        )
        if r["label"].startswith("ours"):
            target_rows.append(
                [
                    "-",
                    f"import `{r['module'].rsplit('.', 2)[-2]}.codecheck` over `airflow.sdk`",
                    "≤ 10 ms",
                    f"{r['median_ms']:.1f} ms",
                    met(r["median_ms"] <= TARGETS["parse_ms"]),
                ]
            )
            target_rows.append(
                [
                    "-",
                    f"`aiohttp` imported by `{r['module'].rsplit('.', 2)[-2]}.codecheck`",
                    "no",
                    fmt(r["aiohttp"]),
                    met(not r["aiohttp"]),
                ]
            )
    text = "\n".join(
        [
            "## 2. Parse-time cost",
            "",
            f"Each sample is a fresh interpreter: `import airflow.sdk`, then `import <module>` timed with "
            f"`time.perf_counter()` (only what the module newly imports counts; `airflow.sdk` already loads "
            f"{'BaseOperator and the DAG machinery'}). Median of {runs} samples per module, ours and dbt-cloud's "
            "alternating; dbt-cloud "
            f"{pinned_version('apache-airflow-providers-dbt-cloud')} in `.venv-bench` (same Airflow constraints). "
            "Self times (ms) of the largest new imports come from one `python -X importtime` run per module "
            "(which inflates them).",
            "",
            table(
                [
                    "module",
                    "median ms (min-max)",
                    "modules newly imported",
                    "aiohttp?",
                    "requests?",
                    "largest new imports, self ms",
                ],
                rows,
            ),
            "",
        ]
    )
    return text, target_rows


def poke_section(result: dict[str, Any]) -> tuple[str, list[list[str]]]:
    rows = [
        ["pokes (`poke()` on one sensor instance)", fmt(result["pokes"])],
        ["progress requests", fmt(result["progress_requests"])],
        ["IAM token calls", fmt(result["iam_calls"])],
        ["TCP connections", fmt(result["connections"])],
        ["TLS handshakes", fmt(result["tls_handshakes"])],
        ["CPU ms per poke", fmt(result["cpu_ms_per_poke"], 2)],
        ["median wall ms per poke", fmt(result["median_ms_per_poke"], 2)],
        ["first poke (IAM token + TLS handshake), ms", fmt(result["first_poke_ms"], 1)],
    ]
    text = "\n".join(
        [
            "## 3. Poke mode",
            "",
            '`CodeCheckTaskSensor(mode="poke")`, IAM password auth, `poke()` called 100 times on one instance in one '
            "process (pinned to CPU 1) while the scan runs; figures from the emulator's stats around the process.",
            "",
            table(["figure", "ours"], rows),
            "",
        ]
    )
    targets = [
        [
            "-",
            "poke mode: IAM token calls per 100 pokes",
            "1",
            fmt(result["iam_calls"]),
            met(result["iam_calls"] == 1),
        ],
        [
            "-",
            "poke mode: TCP connections per 100 pokes",
            "1",
            fmt(result["connections"]),
            met(result["connections"] == 1),
        ],
    ]
    return text, targets


def write_report(path: Path, data: dict[str, Any]) -> None:
    config = data["config"]
    sections, targets = [], []
    if data.get("scale"):
        text, rows = scale_section(data["scale"], config)
        sections.append(text)
        targets += rows
    if data.get("parse"):
        text, rows = parse_section(data["parse"], config["parse_runs"])
        sections.append(text)
        targets += rows
    if data.get("poke"):
        text, rows = poke_section(data["poke"])
        sections.append(text)
        targets += rows
    header = [
        "# Benchmarks",
        "",
        "Generated from one run of `make bench` (`python -m benchmarks.run`"
        + (" --quick: SMALL N, DEVELOPMENT FIGURES ONLY" if data["quick"] else "")
        + f") on {data['date']}, which took {data['runtime_s'] / 60:.1f} min.",
        "",
        f"Machine: `os.cpu_count()` = {data['cpu_count']} ({data['cpu_model']}), {data['memory_gib']:.0f} GiB; "
        f"Python {data['python']}, Airflow {data['airflow']}, aiohttp {data['aiohttp']}; emulator and benchmark "
        f"process pinned to separate CPUs with taskset: {fmt(data['pinned'])}. The machine is shared with other "
        f"agents' test runs (load average {data['load_start']:.2f} at the start, {data['load_end']:.2f} at the end), so "
        "absolute times are noisy: compare the columns measured side by side, one after the other, in this run.",
        "",
        "Regenerate with `make bench` (about 15 minutes; `python -m benchmarks.run --quick` for a fast check).",
        "",
        "## Targets",
        "",
        table(["N", "figure", "target", "measured", "met?"], targets),
        "",
    ]
    body = "\n\n".join(sections)
    path.write_text("\n".join(header) + "\n" + body + "\n\n" + analysis(data) + "\n")


def analysis(data: dict[str, Any]) -> str:
    return ""


def machine_facts() -> dict[str, Any]:
    from importlib.metadata import version

    import aiohttp

    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = float("nan")
    return {
        "cpu_count": common.cpu_count(),
        "cpu_model": model,
        "memory_gib": memory,
        "python": platform.python_version(),
        "airflow": version("apache-airflow"),
        "aiohttp": aiohttp.__version__,
        "pinned": common.can_pin(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N and short scans (development)")
    parser.add_argument(
        "--only", default="scale,parse,poke", help="comma-separated subset of scale,parse,poke"
    )
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--from-json", help="only re-render the report from a results.json of an earlier run")
    args = parser.parse_args(argv)
    if args.from_json:
        write_report(Path(args.output), json.loads(Path(args.from_json).read_text()))
        return 0
    only = set(args.only.split(","))
    config = QUICK if args.quick else FULL
    common.raise_fd_limit()
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="codecheck-bench-")
    data: dict[str, Any] = {
        "quick": args.quick,
        "config": config,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": common.load_average(),
        **machine_facts(),
    }
    log(f"cpu_count={data['cpu_count']}, pinned={data['pinned']}, work dir {workdir}")
    if "parse" in only:
        bench_python = ensure_bench_venv()
        data["parse"] = run_parse(config, bench_python)
    if "poke" in only:
        data["poke"] = run_poke(workdir)
    if "scale" in only:
        data["scale"] = run_scale(config, workdir)
    data["runtime_s"] = time.monotonic() - started
    data["load_end"] = common.load_average()
    Path(workdir, "results.json").write_text(json.dumps(data, indent=1, default=str))
    write_report(Path(args.output), data)
    log(f"wrote {args.output} (raw figures: {workdir}/results.json) in {data['runtime_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
