"""Render the figures of a reliability run into docs/reliability.md.

    RELIABILITY_FIGURES=/tmp/figures-3.3.json make reliability
    RELIABILITY_FIGURES=/tmp/figures-2.11.json make reliability AIRFLOW=2.11
    python scripts/reliability_report.py /tmp/figures-3.3.json /tmp/figures-2.11.json

Each figures file (written by tests/reliability when ``$RELIABILITY_FIGURES`` names it) becomes one section,
placed between the ``<!-- figures:start -->`` and ``<!-- figures:end -->`` markers; ``--print`` prints it instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from airflow_provider_codecheck import testing

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"
# The fault matrix's rows, in the order of tests/reliability (reliability_helpers.TRANSIENT_KINDS).
TRANSIENT = (*testing.RETRIED_FAULTS, "token_expired")
PERMANENT = tuple(testing.PERMANENT_FAULTS)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join("-" if cell is None else str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.0f}%"


def _requests(row: dict[str, Any]) -> str | None:
    if not row:
        return None
    return f"{row['requests']} / {row['ideal']} = {row['ratio']} (k {row['k']:g})"


def _verdicts(row: dict[str, Any]) -> str | None:
    if not row:
        return None
    return ", ".join(f"{name[-1]}→{state}" for name, state in sorted(row["states"].items()))


def section(figures: dict[str, Any]) -> list[str]:
    rows = figures["rows"]
    run = rows.get("run", {})
    title = f"Airflow {run.get('airflow', '?')}, Python {run.get('python', '?')}"
    out = [
        f"### {title}",
        "",
        f"Run of {run.get('date', '?')} on {run.get('cpus', '?')} CPUs: {run.get('passed', '?')} passed, "
        f"{run.get('failed', '?')} failed, {run.get('deselected', 0)} deselected, in {run.get('seconds', '?')} s.",
        "",
        "**Transient faults** (probability 0.3 per progress request, each task's own seeded plan). "
        "Trigger: 50 concurrent waits in one event loop; hook: 10 `wait_for_scan` threads; poke: 3 sensors "
        "in `dag.test()` (final status 1, 2, 3 → expected failed, success, failed).",
        "",
    ]
    table = []
    for kind in ("mixed", *TRANSIENT):
        trig, hook, poke = (rows.get(f"{side}/{kind}", {}) for side in ("trigger", "hook", "poke"))
        table.append(
            [
                f"`{kind}`",
                trig.get("correct"),
                _pct(trig.get("faulted_share")),
                _requests(trig),
                trig.get("iam_tokens"),
                trig.get("seconds"),
                hook.get("correct"),
                _requests(hook),
                hook.get("seconds"),
                _verdicts(poke),
                poke.get("requests"),
            ]
        )
    out += _table(
        [
            "fault",
            "trigger correct",
            "faulted",
            "trigger requests / ideal",
            "IAM tokens",
            "s",
            "hook correct",
            "hook requests / ideal",
            "s",
            "poke verdicts",
            "poke requests",
        ],
        table,
    )
    out += ["**Permanent errors** (every progress request faulted): attempts per wait.", ""]
    out += _table(
        ["fault", "trigger (50 waits)", "hook (10 waits)", "poke sensor (3)"],
        [
            [
                f"`{kind}`",
                rows.get(f"trigger/{kind}", {}).get("attempts_per_wait"),
                rows.get(f"hook/{kind}", {}).get("attempts_per_wait"),
                None if f"poke/{kind}" not in rows else rows[f"poke/{kind}"]["requests"] / 3,
            ]
            for kind in PERMANENT
        ],
    )
    run_rows = []
    if "hook/run running_200" in rows:
        r = rows["hook/run running_200"]
        run_rows.append(
            ["hook `run_task`, 50 tasks, p 0.3", r["refused"], r["run_requests"], r["scans_started"]]
        )
    if "operator/run running_200" in rows:
        r = rows["operator/run running_200"]
        run_rows.append(
            ["operator (deferrable + worker), 3 refusals each", 6, r["run_requests"], r["scans_started"]]
        )
    if run_rows:
        out += ["**`running_200` on run** (CC.00050015 with HTTP 200): refused runs are retried.", ""]
        out += _table(["path", "refusals", "run requests", "scans started"], run_rows)
    restart = [rows[key] for key in ("restart/40", "restart/200") if key in rows]
    if restart:
        out += ["**Triggerer restarts** (lagged scans, previous verdict differs, stale guard 3 s).", ""]
        out += _table(
            [
                "waits",
                "correct",
                "re-creations",
                "of which process restart",
                "scans started",
                "requests / ideal",
                "max lateness s",
                "s",
            ],
            [
                [
                    r["waits"],
                    r["correct"],
                    r["restarts"],
                    r["recreated_by_process_restart"],
                    r["scans_started"],
                    f"{r['requests']} / {r['ideal']} = {r['ratio']}",
                    r["max_lateness_s"],
                    r["seconds"],
                ]
                for r in restart
            ],
        )
    other = []
    if "fuzz" in rows:
        fuzz = rows["fuzz"]
        detail = ", ".join(f"{key} {value}" for key, value in sorted(fuzz.items()) if key != "total")
        other.append(["fuzz examples", f"{fuzz.get('total', sum(fuzz.values()))} ({detail})"])
    if "secrets/dag" in rows:
        s = rows["secrets/dag"]
        other.append(
            [
                "secret scan",
                f"{s['scenarios']} dag.test scenarios, {s['secrets_checked']} secrets, {s['output_lines']} log "
                f"lines, {s['database_rows']} DB rows, {s['files_scanned']} files: {s['leaks']} leaks "
                f"({s['airflow_mask_secret_debug_lines']} Airflow MaskSecret DEBUG lines set aside), {s['seconds']} s",
            ]
        )
    for auth in ("password", "aksk"):
        if f"tls/{auth}" in rows:
            other.append([f"TLS without `ca_bundle` ({auth})", rows[f"tls/{auth}"]["message"]])
    if other:
        out += _table(["check", "result"], other)
    return out


def main(argv: list[str]) -> None:
    paths = [arg for arg in argv if not arg.startswith("--")]
    if not paths:
        raise SystemExit(__doc__)
    lines: list[str] = []
    for path in paths:
        lines += section(json.loads(Path(path).read_text()))
    text = "\n".join(lines)
    if "--print" in argv:
        print(text)
        return
    doc = DOC.read_text()
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main(sys.argv[1:])
