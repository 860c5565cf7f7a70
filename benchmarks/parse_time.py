"""Parse-time cost: what importing an operator/sensor module adds to a DAG file that imported ``airflow.sdk``.

Each sample is a fresh interpreter that runs ``import airflow.sdk``, then times ``import <module>`` with
``time.perf_counter()`` (so only what the module newly imports counts) and reports whether ``aiohttp`` (and
``requests``) got imported. Samples of ours and of dbt-cloud's modules alternate, so machine noise hits both
alike; the figure is the median. One ``python -X importtime`` run per module, first, names the top costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import common

PREAMBLE = "import airflow.sdk"

_PROBE = """
import json, sys, time
{preamble}
before = set(sys.modules)
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
print(json.dumps({{
    "ms": 1000 * elapsed,
    "aiohttp": "aiohttp" in sys.modules,
    "requests": "requests" in sys.modules,
    "new_modules": len(set(sys.modules) - before),
}}))
"""

_IMPORTTIME = """
import sys
{preamble}
sys.stderr.write("@@MARK@@\\n")
sys.stderr.flush()
import {module}
"""


def _env() -> dict[str, str]:
    env = common.child_env("https://127.0.0.1:1", "", common.temp_airflow_home())
    env.pop(common.CONN_ENV, None)
    return env


def _python(python: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter with the children's environment, from the repository root."""
    return subprocess.run(
        [python, *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=common.repo_root(),
        timeout=300,
        check=False,
    )


def sample(python: str, module: str, preamble: str = PREAMBLE) -> dict[str, Any]:
    out = _python(python, "-c", _PROBE.format(preamble=preamble, module=module))
    if out.returncode != 0:
        raise RuntimeError(f"importing {module} with {python} failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def top_imports(
    python: str, module: str, count: int = 5, preamble: str = PREAMBLE
) -> list[tuple[str, float]]:
    """The modules with the largest self time among those ``module`` newly imports (-X importtime, ms)."""
    out = _python(python, "-X", "importtime", "-c", _IMPORTTIME.format(preamble=preamble, module=module))
    lines = out.stderr.split("@@MARK@@", 1)[-1].splitlines()
    rows: list[tuple[str, float]] = []
    for line in lines:
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [part.strip() for part in line.split(":", 1)[1].split("|")]
        if len(parts) == 3 and parts[0].isdigit():
            rows.append((parts[2], int(parts[0]) / 1000))
    return sorted(rows, key=lambda row: -row[1])[:count]


def measure(subjects: list[tuple[str, str, str]], runs: int = 7) -> list[dict[str, Any]]:
    """``subjects``: (label, python, module). Returns per subject the median ms and what got imported."""
    # The -X importtime run goes first: it also writes any missing .pyc files, which the timed runs then use
    # (uv installs without compiling bytecode), so no timed run pays for compiling sources.
    tops = {label: top_imports(python, module) for label, python, module in subjects}
    samples: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in subjects}
    for _ in range(runs):
        for label, python, module in subjects:
            samples[label].append(sample(python, module))
    results = []
    for label, python, module in subjects:
        rows = samples[label]
        results.append(
            {
                "label": label,
                "module": module,
                "python": python,
                "runs": len(rows),
                "median_ms": common.median([row["ms"] for row in rows]),
                "min_ms": min(row["ms"] for row in rows),
                "max_ms": max(row["ms"] for row in rows),
                "aiohttp": any(row["aiohttp"] for row in rows),
                "requests": any(row["requests"] for row in rows),
                "new_modules": rows[0]["new_modules"],
                "top_imports": tops[label],
            }
        )
    return results


def main() -> int:
    python = sys.executable
    bench = Path(common.repo_root(), ".venv-bench", "bin", "python")
    subjects = [
        ("ours operator", python, "airflow_provider_codecheck.operators.codecheck"),
        ("ours sensor", python, "airflow_provider_codecheck.sensors.codecheck"),
    ]
    if bench.exists():
        subjects += [
            ("dbt-cloud operator", str(bench), "airflow.providers.dbt.cloud.operators.dbt"),
            ("dbt-cloud sensor", str(bench), "airflow.providers.dbt.cloud.sensors.dbt"),
        ]
    print(json.dumps(measure(subjects, runs=3), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
