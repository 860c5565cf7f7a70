"""The provider at scale on the real stack (issue 13 item 4): PostgreSQL, api-server, scheduler, dag-processor,
TWO triggerers, LocalExecutor, the CodeArts Check emulator.

Phases, one after another in one stack (so each phase's CPU is its own):

1. ``small-deferrable`` / ``small-sft``: the same DAG of ``--small`` sensors, plain ``deferrable=True`` and
   ``start_from_trigger=True`` (the latter only when the installed sensor accepts it);
2. ``large``: ``--sensors`` sensors (``start_from_trigger`` when available, else deferrable) split over
   ``--large-dags`` DAGs (default 20 of 50 tasks: on Airflow 3.3.2 ONE DAG of 1,000 start_from_trigger tasks
   deadlocks the triggerers, see BENCHMARKS.md; ``--large-dags 1`` reproduces it);
3. ``failover``: sensors and deferred operators (``cancel_on_kill=True``) on long scans; one triggerer is
   SIGSTOPped for longer than ``[triggerer] triggerer_health_check_threshold``, then SIGCONTed;
4. ``mark-failed``: one deferred operator is marked failed through the REST API.

Every phase's scans are started in the emulator only once every wait is deferred and has polled (a scan
started earlier would end before its wait began, and its latency would measure the start-up instead).
One scan in ten fails, so each wait's verdict is checked (success or failed, as the scan ended).

How the figures are measured (see BENCHMARKS.md "Real stack at scale"):

* worker task runs: the api-server's access-log lines ``PATCH /execution/task-instances/<id>/run`` answered
  200 (every
  task run on a worker, first start and resume after deferral alike, starts with that call);
* scan end -> task success: the TI's ``end_date`` in the metadata DB minus the scan's end in the emulator
  (its ``finished_at`` on ``CLOCK_MONOTONIC``, turned into wall time with this process's offset);
* CPU: utime+stime (+ that of reaped children) of every process of each service's tree, at the phase's start
  and end (so the worker processes the LocalExecutor forks count under the scheduler);
* RSS: each triggerer's supervisor + runner (not its serve-logs child), sampled every second; the peak;
* connection calls: every connection lookup that reaches Airflow (a triggerer supervisor's ``GetConnection``
  answered by its in-process Execution API, a worker's ``GET /execution/connections/<id>`` on the api-server)
  ends in one query of the ``connection`` table (no secrets cache outside the dag-processor, the connection
  lives in the metadata DB). PostgreSQL counts those scans (``pg_stat_user_tables``: seq_scan + idx_scan of
  ``connection``); the workers' share is the api-server's access-log lines ``GET /execution/connections/<id>``;
  the rest are the triggerers' supervisor calls (nothing else reads the table during a phase: the run makes no
  connection REST call then). The in-process Execution API of a triggerer has no access log, and its
  supervisor logs no line per request, so they cannot be counted in its log.

Run: ``make e2e-scale`` (or ``.venv/bin/python tests/e2e/scale/run_scale.py [--sensors 1000 --small 100]``).
Exits non-zero when a check fails. ``--write-benchmarks`` replaces the block between the
``scale:begin``/``scale:end`` markers of BENCHMARKS.md with this run's figures; ``--from-report`` renders a
saved ``scale-report.json`` again. ``--scan-factor 0.3`` with small sizes is a quick check of the harness.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import platform
import re
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg2

REPO = Path(__file__).resolve().parents[3]


def _stack_module() -> Any:
    """tests/e2e/stack.py when it exists (issue 15 item 3), else the former e2e/run_e2e.py: same names."""
    for folder, name in ((REPO / "tests" / "e2e", "stack"), (REPO / "e2e", "run_e2e")):
        if (folder / f"{name}.py").exists():
            sys.path.insert(0, str(folder))
            return importlib.import_module(name)
    raise ImportError("neither tests/e2e/stack.py nor e2e/run_e2e.py")


stack_mod = _stack_module()
AIRFLOW = stack_mod.AIRFLOW
CONN_ID = "codecheck_default"

POLL_S = 5.0  # poll interval of every wait (fixed: max_poll_interval = poll interval)
HEALTH_THRESHOLD_S = 15  # [triggerer] triggerer_health_check_threshold
CAPACITY = 600  # [triggerer] capacity of each triggerer: 1,000 waits need both
# The api-server's access log (Airflow's HttpAccessLogMiddleware): a worker's task start, a worker's lookup.
WORKER_RUN_RE = re.compile(
    r"method=PATCH path=/execution/task-instances/[0-9a-f-]+/run query=\S* status_code=200"
)
WORKER_CONN_RE = re.compile(
    r"method=GET path=/execution/connections/" + re.escape(CONN_ID) + r" query=\S* status_code=200"
)
# PostgreSQL flushes a backend's table counters when it goes idle, at the latest 10 s later (PGSTAT_IDLE_INTERVAL).
PG_STATS_FLUSH_S = 11


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", flush=True)


def sensor_supports_start_from_trigger() -> bool:
    from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor

    return "start_from_trigger" in inspect.signature(CodeCheckTaskSensor.__init__).parameters


# --- DAG files --------------------------------------------------------------------------------------------

DAG_TEMPLATE = '''\
"""Generated by tests/e2e/scale/run_scale.py: {sensors} sensors in {dags} DAG(s), {operators} operators ({mode})."""
from airflow.sdk import DAG

from airflow_provider_codecheck.operators.codecheck import CodeCheckRunTaskOperator
from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor

SENSOR_KWARGS = {sensor_kwargs!r}
DAG_IDS = {dag_ids!r}
PER_DAG = {per_dag}

for j, dag_id in enumerate(DAG_IDS):
    with DAG(
        dag_id,
        schedule=None,
        catchup=False,
        max_active_runs=1,
        max_active_tasks={max_tasks},
        is_paused_upon_creation=False,
    ):
        for i in range(j * PER_DAG, min((j + 1) * PER_DAG, {sensors})):
            CodeCheckTaskSensor(
                task_id=f"sensor_{{i:04d}}",
                codecheck_task_id=f"{prefix}-s{{i:04d}}",
                poke_interval={poll},
                max_poll_interval={poll},
                **SENSOR_KWARGS,
            )
        for i in range({operators} if j == 0 else 0):
            CodeCheckRunTaskOperator(
                task_id=f"operator_{{i:04d}}",
                codecheck_task_id=f"{prefix}-o{{i:04d}}",
                deferrable=True,
                poll_interval={poll},
                max_poll_interval={poll},
                cancel_on_kill=True,
            )
'''


@dataclass
class Phase:
    name: str
    dag_id: str
    sensors: int
    operators: int = 0
    mode: str = "deferrable"  # or "start_from_trigger" (sensors only)
    scan_s: tuple[float, float] = (20.0, 80.0)  # scan durations, spread evenly over this range
    dags: int = 1  # the sensors split evenly over this many DAGs (operators: in the first)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def dag_ids(self) -> list[str]:
        return [self.dag_id] if self.dags == 1 else [f"{self.dag_id}_{j:02d}" for j in range(self.dags)]

    @property
    def n(self) -> int:
        return self.sensors + self.operators

    def sensor_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"deferrable": True}
        if self.mode == "start_from_trigger":
            kwargs["start_from_trigger"] = True
        return kwargs

    def write_dag(self, dags: Path) -> None:
        (dags / f"{self.dag_id}.py").write_text(
            DAG_TEMPLATE.format(
                prefix=self.dag_id,
                dag_ids=self.dag_ids,
                dags=self.dags,
                per_dag=-(-self.sensors // self.dags),
                sensors=self.sensors,
                operators=self.operators,
                mode=self.mode,
                sensor_kwargs=self.sensor_kwargs(),
                max_tasks=max(self.n, 16),
                poll=POLL_S,
            )
        )

    def codecheck_ids(self) -> dict[str, str]:
        """Airflow task id -> emulator task id."""
        ids = {f"sensor_{i:04d}": f"{self.dag_id}-s{i:04d}" for i in range(self.sensors)}
        ids.update({f"operator_{i:04d}": f"{self.dag_id}-o{i:04d}" for i in range(self.operators)})
        return ids

    def scan_plan(self) -> dict[str, tuple[float, int]]:
        """Emulator task id -> (duration, final status): durations spread evenly, one scan in ten fails."""
        low, high = self.scan_s
        ids = sorted(self.codecheck_ids().values())
        plan = {}
        for k, cid in enumerate(ids):
            duration = low + (high - low) * (k / max(len(ids) - 1, 1))
            plan[cid] = (round(duration, 3), 1 if k % 10 == 9 else 2)
        return plan


# --- measuring processes ----------------------------------------------------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int) -> float:
    """CPU of a process tree: every live process's own time plus that of its reaped children. A child that
    ends between two readings moves its time into its parent's ``children_*``, so the difference of two
    readings stays the tree's CPU in between."""
    total = 0.0
    for proc in tree(pid):
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def triggerer_rss(pid: int) -> tuple[int, int]:
    """RSS of a triggerer's supervisor (``pid``) and of its runner (the forked child that runs the triggers'
    event loop); its ``serve-logs`` child is left out (it serves log files, whatever the triggers do)."""
    supervisor = runner = 0
    for proc in tree(pid):
        with contextlib.suppress(psutil.Error):
            if proc.pid == pid:
                supervisor = proc.memory_info().rss
            elif "serve-logs" not in " ".join(proc.cmdline()):
                runner += proc.memory_info().rss
    return supervisor, runner


class RssSampler:
    """Peak RSS of each triggerer (supervisor + runner), sampled every second in a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self.peak_runner: dict[str, int] = dict.fromkeys(pids, 0)
        self.peak_sum = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            parts = {name: triggerer_rss(pid) for name, pid in self.pids.items()}
            values = {name: sum(pair) for name, pair in parts.items()}
            for name, value in values.items():
                self.peak[name] = max(self.peak[name], value)
                self.peak_runner[name] = max(self.peak_runner[name], parts[name][1])
            self.peak_sum = max(self.peak_sum, sum(values.values()))
            self._stop.wait(1.0)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)


def count_lines(path: Path, pattern: re.Pattern[str]) -> int:
    if not path.exists():
        return 0
    with open(path, errors="replace") as handle:
        return sum(1 for line in handle if pattern.search(line))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# --- the run ----------------------------------------------------------------------------------------------


class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append((name, bool(ok), detail))
        print(f"  {'PASS' if ok else 'FAIL'}  {name}{f'  ({detail})' if detail else ''}", flush=True)
        return bool(ok)

    @property
    def failed(self) -> list[tuple[str, bool, str]]:
        return [r for r in self.results if not r[1]]


class ScaleRun:
    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        self.args = args
        self.stack = stack_mod.Stack(tmp)
        self.checks = Checks()
        self.dags = tmp / "dags"
        self.dags.mkdir()
        self.services: dict[str, Any] = {}
        self.triggerer_jobs: dict[str, int] = {}  # service name -> triggerer job id
        self.idle_cpu_per_s: dict[str, float] = {}
        self.mono_to_wall = time.time() - time.monotonic()  # the emulator's clock is CLOCK_MONOTONIC

    # -- set-up --

    def start(self, phases: list[Phase]) -> None:
        t0 = time.monotonic()
        self.pg = stack_mod.start_postgres(self.tmp, self.stack)
        api_port = stack_mod.free_port()
        env = stack_mod.airflow_env(self.tmp, self.pg, api_port)
        env.update(
            {
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__PARALLELISM": str(self.args.parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2000",
                "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "2000",
                "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": "2000",
                # A 1,000-task DAG file costs seconds to parse: parse it when it is new, not every minute.
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
                "AIRFLOW__TRIGGERER__CAPACITY": str(CAPACITY),
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_THRESHOLD_S),
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            }
        )
        self.env = env
        for phase in phases:
            phase.write_dag(self.dags)
        stack_mod.run([AIRFLOW, "db", "migrate"], self.tmp / "logs" / "db-migrate.log", env=env, cwd=self.tmp)
        self.emulator = stack_mod.Emulator(self.stack, env)
        self.services = dict(stack_mod.start_airflow(self.stack, env, api_port))
        self.api = stack_mod.AirflowApi(
            f"http://127.0.0.1:{api_port}", Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        )
        stack_mod.wait_for_health(self.api, self.services)
        self.db = psycopg2.connect(host="127.0.0.1", port=self.pg.port, user="postgres", dbname="airflow")
        self.db.autocommit = True
        # Map each triggerer process to its job id: the first one's job exists now, the second's is the new one.
        self.triggerer_names = sorted(name for name in self.services if name.startswith("triggerer"))
        if len(self.triggerer_names) == 1:
            first = self.triggerer_names[0]
            self.triggerer_jobs[first] = self._wait_new_triggerer_job(set())
            # Its own trigger log server port: two on one port leave the second without one.
            env2 = {**env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(stack_mod.free_port())}
            second = self.stack.start("triggerer-2", [AIRFLOW, "triggerer"], env2, "triggerer-2.log")
            self.services["triggerer-2"] = second
            self.triggerer_jobs["triggerer-2"] = self._wait_new_triggerer_job({self.triggerer_jobs[first]})
            self.triggerer_names = [first, "triggerer-2"]
        else:  # a start_airflow that started them all: match job rows by start order
            jobs = self._triggerer_jobs_alive()
            for name, job in zip(self.triggerer_names, sorted(jobs), strict=False):
                self.triggerer_jobs[name] = job
        log(f"triggerer jobs {self.triggerer_jobs}")
        self.api.login()
        self.stack_mod_create_connection()
        for phase in phases:
            for dag_id in phase.dag_ids:
                self._wait_parsed(dag_id)
        log(f"stack up and {len(phases)} DAGs parsed in {time.monotonic() - t0:.0f}s")
        self.measure_idle()

    def measure_idle(self, seconds: float = 30.0) -> None:
        """CPU of the stack with nothing to do (its loops and heartbeats), per second: the floor under every
        phase's CPU. Measured over ``seconds`` of doing nothing, which is the measurement."""
        before = self.snapshot()
        time.sleep(seconds)
        after = self.snapshot()
        wall = after["t"] - before["t"]
        cpu = {k: (after["cpu"][k] - before["cpu"].get(k, 0.0)) / wall for k in after["cpu"]}
        self.idle_cpu_per_s = cpu
        log(f"idle CPU per second: {json.dumps({k: round(v, 3) for k, v in cpu.items()})}")

    def stack_mod_create_connection(self) -> None:
        """The connection in the metadata DB (not an environment variable): every lookup then reaches
        PostgreSQL, where it is counted."""
        from airflow_provider_codecheck.emulator.defaults import IAM_DOMAIN, IAM_PASSWORD, IAM_USER

        base = self.emulator.base_url
        self.api.request(
            "POST",
            "/connections",
            expect=(201,),
            json={
                "connection_id": CONN_ID,
                "conn_type": "huaweicloud_codecheck",
                "host": base,
                "login": IAM_USER,
                "password": IAM_PASSWORD,
                "extra": json.dumps(
                    {"auth_type": "password", "domain_name": IAM_DOMAIN, "iam_endpoint": base}
                ),
            },
        )

    def _triggerer_jobs_alive(self) -> set[int]:
        rows = self.sql(
            "SELECT id FROM job WHERE job_type = 'TriggererJob' AND end_date IS NULL "
            "AND latest_heartbeat > now() - interval '20 seconds'"
        )
        return {row[0] for row in rows}

    def _wait_new_triggerer_job(self, known: set[int]) -> int:
        def new() -> int | None:
            fresh = self._triggerer_jobs_alive() - known
            return min(fresh) if fresh else None

        return int(stack_mod.wait_until("a new triggerer job", new, 120, 0.5))

    def _wait_parsed(self, dag_id: str) -> None:
        stack_mod.wait_until(
            f"DAG {dag_id} parsed",
            lambda: self.api.http.get(f"/api/v2/dags/{dag_id}").status_code == 200,
            300,
            1,
        )

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.db.cursor() as cur:
            cur.execute(query, params)
            return list(cur.fetchall())

    # -- counters --

    def pid_of(self, name: str) -> int:
        return int(self.services[name].proc.pid)

    def snapshot(self) -> dict[str, Any]:
        groups = {name: self.pid_of(name) for name in self.services}
        groups["emulator"] = self.emulator.service.proc.pid
        cpu = {name: cpu_seconds(pid) for name, pid in groups.items()}
        cpu["postgres"] = cpu_seconds(self.pg.pid)
        api_log = self.services["api-server"].log_path
        (scans,) = self.sql(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
            "WHERE relname = 'connection'"
        )[0]
        return {
            "t": time.monotonic(),
            "cpu": cpu,
            "connection_table_scans": int(scans),
            "worker_runs": count_lines(api_log, WORKER_RUN_RE),
            "worker_conn_calls": count_lines(api_log, WORKER_CONN_RE),
            "emulator": self.emulator.stats(),
        }

    # -- observation --

    def tis(self, dag_ids: list[str], run_id: str) -> dict[str, dict[str, Any]]:
        rows = self.sql(
            "SELECT ti.task_id, ti.state, ti.try_number, ti.hostname, ti.end_date, ti.trigger_id, t.triggerer_id "
            "FROM task_instance ti LEFT JOIN trigger t ON t.id = ti.trigger_id "
            "WHERE ti.dag_id = ANY(%s) AND ti.run_id = %s",
            (dag_ids, run_id),
        )
        keys = ("task_id", "state", "try_number", "hostname", "end_date", "trigger_id", "triggerer_id")
        return {row[0]: dict(zip(keys, row, strict=True)) for row in rows}

    def progress_requests(self) -> int:
        return int(self.emulator.progress_requests())

    def wait_all_deferred(self, phase: Phase, run_id: str, timeout: float) -> float:
        """Until every TI is deferred with a running trigger and each wait has polled once; seconds taken."""
        t0 = time.monotonic()
        polls_before = self.progress_requests()
        last_note = 0.0

        def ready() -> bool:
            nonlocal last_note
            tis = self.tis(phase.dag_ids, run_id)
            states: dict[str, int] = {}
            for ti in tis.values():
                states[str(ti["state"])] = states.get(str(ti["state"]), 0) + 1
            ended = {k: v for k, v in states.items() if k in ("success", "failed", "upstream_failed")}
            if ended:
                raise AssertionError(f"{phase.name}: tasks ended before their scans started: {states}")
            assigned = sum(1 for ti in tis.values() if ti["state"] == "deferred" and ti["triggerer_id"])
            if time.monotonic() - last_note > 15:
                last_note = time.monotonic()
                log(f"{phase.name}: {states}, {assigned} assigned to a triggerer")
            return (
                len(tis) == phase.n
                and assigned == phase.n
                and self.progress_requests() - polls_before >= 2 * phase.n
            )

        stack_mod.wait_until(f"{phase.name}: all {phase.n} waits deferred and polling", ready, timeout, 1)
        return time.monotonic() - t0

    def wait_all_ended(self, phase: Phase, run_id: str, timeout: float) -> dict[str, dict[str, Any]]:
        last_note = 0.0

        def done() -> dict[str, dict[str, Any]] | None:
            nonlocal last_note
            tis = self.tis(phase.dag_ids, run_id)
            pending = [t for t in tis.values() if t["state"] not in ("success", "failed", "skipped")]
            if time.monotonic() - last_note > 20:
                last_note = time.monotonic()
                log(f"{phase.name}: {len(tis) - len(pending)}/{len(tis)} ended")
            return tis if not pending else None

        return dict(stack_mod.wait_until(f"{phase.name}: every task ended", done, timeout, 1))

    # -- phases --

    def prepare_scans(self, phase: Phase) -> dict[str, tuple[float, int]]:
        plan = phase.scan_plan()
        for cid, (duration, status) in plan.items():
            # Sensors' tasks exist but were never scanned (the sensor keeps waiting); an operator's task
            # starts its scan when the operator runs it.
            self.emulator.put_task(task_id=cid, duration_s=duration, final_status=status)
        return plan

    def commit_scans(self, phase: Phase, plan: dict[str, tuple[float, int]]) -> None:
        sensor_ids = {cid for task, cid in phase.codecheck_ids().items() if task.startswith("sensor_")}
        for cid in sorted(sensor_ids):
            duration, status = plan[cid]
            response = self.emulator.http.post(
                f"/_emulator/tasks/{cid}/commit", json={"duration_s": duration, "final_status": status}
            )
            response.raise_for_status()

    def trigger(self, phase: Phase) -> str:
        run_id = f"scale-{phase.name}"
        for dag_id in phase.dag_ids:
            self.api.trigger(dag_id, run_id)
        return run_id

    def verdict_checks(
        self, phase: Phase, tis: dict[str, dict[str, Any]], plan: dict[str, tuple[float, int]]
    ) -> None:
        ids = phase.codecheck_ids()
        wrong = [
            f"{task}={ti['state']}"
            for task, ti in tis.items()
            if ti["state"] != ("success" if plan[ids[task]][1] == 2 else "failed")
        ]
        self.checks.check(
            f"{phase.name}: every wait ended with its scan's verdict ({phase.n} tasks, one scan in ten failed)",
            not wrong,
            f"wrong: {wrong[:10]}"
            if wrong
            else f"{sum(1 for t in tis.values() if t['state'] == 'success')} success",
        )

    def scan_records(self, phase: Phase) -> dict[str, dict[str, Any]]:
        return {cid: self.emulator.task(cid) for cid in phase.codecheck_ids().values()}

    def measure_phase(self, phase: Phase) -> None:
        log(f"== phase {phase.name}: {phase.sensors} sensors ({phase.mode}), {phase.operators} operators")
        plan = self.prepare_scans(phase)
        before = self.snapshot()
        pids = {name: self.pid_of(name) for name in self.triggerer_names}
        with RssSampler(pids) as rss:
            run_id = self.trigger(phase)
            deferred_s = self.wait_all_deferred(phase, run_id, self.args.defer_timeout)
            log(
                f"{phase.name}: all {phase.n} deferred and polling after {deferred_s:.0f}s; starting the scans"
            )
            at_defer = self.snapshot()
            self.commit_scans(phase, plan)
            tis = self.wait_all_ended(phase, run_id, phase.scan_s[1] + self.args.end_timeout)
            time.sleep(PG_STATS_FLUSH_S)  # measurement only: PostgreSQL's counters catch up (see above)
            after = self.snapshot()
        records = self.scan_records(phase)
        self.verdict_checks(phase, tis, plan)
        latencies = []
        for task, ti in tis.items():
            execs = records[phase.codecheck_ids()[task]]["executions"]
            finished = execs[-1].get("finished_at") if execs else None
            if finished is None or ti["end_date"] is None:
                continue
            latencies.append(ti["end_date"].timestamp() - (finished + self.mono_to_wall))
        cpu = {k: after["cpu"][k] - before["cpu"].get(k, 0.0) for k in after["cpu"]}
        trig_cpu = sum(cpu[name] for name in self.triggerer_names)
        wall = after["t"] - before["t"]
        table_scans = after["connection_table_scans"] - before["connection_table_scans"]
        worker_conn = after["worker_conn_calls"] - before["worker_conn_calls"]
        phase.results = {
            "tasks": phase.n,
            "dags": phase.dags,
            "mode": phase.mode,
            "deferred_after_s": round(deferred_s, 1),
            "wall_s": round(after["t"] - before["t"], 1),
            "worker_runs": after["worker_runs"] - before["worker_runs"],
            "worker_runs_to_defer": at_defer["worker_runs"] - before["worker_runs"],
            "latency_p50_s": percentile(latencies, 0.5),
            "latency_p95_s": percentile(latencies, 0.95),
            "latency_max_s": max(latencies) if latencies else None,
            "latencies": len(latencies),
            "triggerer_cpu_s": round(trig_cpu, 1),
            "triggerer_cpu_by_name": {n: round(cpu[n], 1) for n in self.triggerer_names},
            "triggerer_rss_peak_mib": {n: round(v / 2**20, 1) for n, v in rss.peak.items()},
            "triggerer_rss_peak_sum_mib": round(rss.peak_sum / 2**20, 1),
            "runner_rss_peak_mib": {n: round(v / 2**20, 1) for n, v in rss.peak_runner.items()},
            "total_cpu_s": round(sum(cpu.values()), 1),
            "cpu_by_service": {k: round(v, 1) for k, v in cpu.items()},
            "total_cpu_per_task_s": round(sum(cpu.values()) / phase.n, 3),
            # The same, less what the stack burns doing nothing for as long (the idle measurement).
            "triggerer_cpu_net_s": round(
                trig_cpu - wall * sum(self.idle_cpu_per_s.get(n, 0.0) for n in self.triggerer_names), 1
            ),
            "total_cpu_net_per_task_s": round(
                (sum(cpu.values()) - wall * sum(self.idle_cpu_per_s.values())) / phase.n, 3
            ),
            "conn_calls_triggerers": table_scans - worker_conn,
            "conn_calls_workers": worker_conn,
            "connection_table_scans": table_scans,
            "stop_calls": stop_calls(after["emulator"]) - stop_calls(before["emulator"]),
        }
        log(f"{phase.name}: {json.dumps(phase.results)}")
        self.checks.check(
            f"{phase.name}: a latency for every wait",
            len(latencies) == phase.n,
            f"{len(latencies)} of {phase.n}",
        )
        if phase.mode == "start_from_trigger":
            self.checks.check(
                f"{phase.name}: no task ran on a worker (start_from_trigger)",
                phase.results["worker_runs"] == 0,
                f"{phase.results['worker_runs']} worker runs",
            )
        else:
            self.checks.check(
                f"{phase.name}: two worker runs per deferrable task (defer, resume)",
                phase.results["worker_runs"] == 2 * phase.n,
                f"{phase.results['worker_runs']} worker runs for {phase.n} tasks",
            )
        self.checks.check(f"{phase.name}: no stop call", phase.results["stop_calls"] == 0)

    def failover_phase(self, phase: Phase) -> None:
        log(f"== phase {phase.name}: {phase.sensors} sensors ({phase.mode}), {phase.operators} operators")
        plan = self.prepare_scans(phase)
        before = self.snapshot()
        run_id = self.trigger(phase)
        self.wait_all_deferred(phase, run_id, self.args.defer_timeout)
        self.commit_scans(phase, plan)
        tis = self.tis(phase.dag_ids, run_id)
        by_job: dict[int, int] = {}
        for ti in tis.values():
            by_job[ti["triggerer_id"]] = by_job.get(ti["triggerer_id"], 0) + 1
        log(f"{phase.name}: triggers per triggerer job {by_job}")
        job_to_name = {job: name for name, job in self.triggerer_jobs.items()}
        victim_job = max(by_job, key=lambda job: by_job[job])
        victim = job_to_name[victim_job]
        survivor = next(name for name in self.triggerer_names if name != victim)
        moved = by_job[victim_job]
        stop_s = HEALTH_THRESHOLD_S * 2
        log(f"{phase.name}: SIGSTOP {victim} (job {victim_job}, {moved} triggers) for {stop_s}s")
        pgid = self.pid_of(victim)
        os.killpg(pgid, signal.SIGSTOP)
        try:
            time.sleep(stop_s)  # the failover under test needs the heartbeat to go stale: time must pass

            def all_on_survivor() -> bool:
                now = self.tis(phase.dag_ids, run_id)
                pending = [t for t in now.values() if t["state"] == "deferred"]
                return all(t["triggerer_id"] == self.triggerer_jobs[survivor] for t in pending)

            taken_over = True
            try:
                stack_mod.wait_until(f"{survivor} to adopt the triggers", all_on_survivor, 60, 1)
            except TimeoutError:
                taken_over = False
            self.checks.check(
                f"{phase.name}: {survivor} adopted the stopped triggerer's triggers",
                taken_over,
                f"{moved} triggers moved from job {victim_job}",
            )
        finally:
            os.killpg(pgid, signal.SIGCONT)
            log(f"{phase.name}: SIGCONT {victim}")
        tis = self.wait_all_ended(phase, run_id, phase.scan_s[1] + self.args.end_timeout)
        time.sleep(5)  # an on_kill on the woken triggerer would stop a scan within a poll or two
        after = self.snapshot()
        records = self.scan_records(phase)
        self.verdict_checks(phase, tis, plan)
        stops = stop_calls(after["emulator"]) - stop_calls(before["emulator"])
        self.checks.check(
            f"{phase.name}: the emulator counted 0 stop calls", stops == 0, f"{stops} stop calls"
        )
        scans = {cid: len(rec["executions"]) for cid, rec in records.items()}
        runs = {cid: rec.get("runs", 0) for cid, rec in records.items()}
        op_ids = {cid for task, cid in phase.codecheck_ids().items() if task.startswith("operator_")}
        self.checks.check(
            f"{phase.name}: one scan per task",
            all(count == 1 for count in scans.values()),
            f"scans per task {sorted(set(scans.values()))}",
        )
        self.checks.check(
            f"{phase.name}: each operator sent exactly one run call",
            all(runs[cid] == 1 for cid in op_ids),
            f"run calls per operator task {sorted({runs[cid] for cid in op_ids})}",
        )
        victim_log = self.services[victim].log_path.read_text(errors="replace")
        trigger_logs = list((Path(self.env["AIRFLOW_HOME"]) / "logs" / f"dag_id={phase.dag_id}").rglob("*"))
        guard_lines = 0
        kill_lines = 0
        for path in trigger_logs:
            if path.is_file() and f".trigger.{victim_job}." in path.name:
                text = path.read_text(errors="replace")
                guard_lines += text.count("the trigger moved to another triggerer")
                kill_lines += text.count("Stopped CodeArts task")
        phase.results = {
            "tasks": phase.n,
            "sensors": phase.sensors,
            "operators": phase.operators,
            "mode": phase.mode,
            "stopped_triggerer": victim,
            "stopped_for_s": stop_s,
            "triggers_moved": moved,
            "stop_calls": stops,
            "scans_per_task": sorted(set(scans.values())),
            "verdicts_right": not any(
                not r for n, r, _ in self.checks.results if n.startswith(f"{phase.name}: every wait")
            ),
            "on_kill_guard_lines_on_stopped_triggerer": guard_lines,
            "stopped_lines_on_stopped_triggerer": kill_lines,
            "reassignment_cancels_logged": victim_log.count("cancel"),
            "worker_runs": after["worker_runs"] - before["worker_runs"],
        }
        log(f"{phase.name}: {json.dumps(phase.results)}")

    def mark_failed_phase(self, phase: Phase) -> None:
        log(f"== phase {phase.name}: one deferred operator marked failed through the REST API")
        plan = self.prepare_scans(phase)
        before = self.snapshot()
        run_id = self.trigger(phase)
        self.wait_all_deferred(phase, run_id, self.args.defer_timeout)
        (task_id,) = phase.codecheck_ids()
        cid = phase.codecheck_ids()[task_id]
        self.api.request(
            "PATCH",
            f"/dags/{phase.dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
            json={"new_state": "failed"},
        )
        log(f"{phase.name}: marked {task_id} failed; waiting for the stop call")
        stack_mod.wait_until(
            "the scan to be stopped",
            lambda: stop_calls(self.emulator.stats()) > stop_calls(before["emulator"]),
            60,
            0.5,
        )
        time.sleep(10)  # a second stop (a repeated on_kill, the other triggerer) would come within seconds
        after = self.emulator.stats()
        stops = stop_calls(after) - stop_calls(before["emulator"])
        record = self.emulator.task(cid)
        tis = self.tis(phase.dag_ids, run_id)
        self.checks.check(
            f"{phase.name}: the scan was stopped exactly once", stops == 1, f"{stops} stop calls"
        )
        self.checks.check(
            f"{phase.name}: the scan shows stopped (task_status 3)",
            record["executions"][-1].get("stopped") is True,
            f"executions {record['executions']}",
        )
        self.checks.check(
            f"{phase.name}: the task instance stays failed",
            tis[task_id]["state"] == "failed",
            str(tis[task_id]),
        )
        phase.results = {"tasks": 1, "stop_calls": stops, "scan_duration_s": plan[cid][0]}


def stop_calls(stats: dict[str, Any]) -> int:
    return sum(count for key, count in stats["requests"].items() if key.startswith("stop "))


# --- report -----------------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(report: dict[str, Any]) -> str:
    """The BENCHMARKS.md block of one run (between the scale markers; the analysis around it is written by
    hand)."""
    phases = report["phases"]
    idle = report.get("idle_cpu_per_s") or {}
    idle_trig = sum(v for k, v in idle.items() if k.startswith("triggerer"))
    lines = [
        "<!-- scale:begin (generated by tests/e2e/scale/run_scale.py --write-benchmarks) -->",
        f"Run {report['date']}, `{report['command']}`, {report['wall_min']:.1f} min, "
        f"{'all checks passed' if not report['failed'] else 'SOME CHECKS FAILED'}; {report['machine']}. "
        f"PostgreSQL, api-server, scheduler (LocalExecutor, parallelism {report['parallelism']}), dag-processor, "
        f"**two** triggerers (`[triggerer] capacity` {CAPACITY} each, `triggerer_health_check_threshold` "
        f"{HEALTH_THRESHOLD_S} s), the emulator over HTTP, IAM password auth, the connection in the metadata DB; "
        f"every wait polls every {POLL_S:g} s (`max_poll_interval` = `poke_interval`). Each phase's scans start "
        "in the emulator once all its waits are deferred and have polled; their durations are spread evenly "
        "over the phase's range; one scan in ten fails.",
        "",
        "| variant | worker task runs | scan end → task success p50 / p95 (max), s | triggerer CPU s, "
        "both (net of idle) | triggerer peak RSS MiB, supervisor + runner, per triggerer | total CPU s per task "
        "(net of idle) | connection lookups: triggerers / workers | all deferred and polling after, s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {"large": "", "small-deferrable": "deferrable=True", "small-sft": "start_from_trigger=True"}
    for name in ("large", "small-deferrable", "small-sft"):
        r = phases.get(name)
        if not r:
            continue
        dags = r.get("dags", 1)
        where = f" in {dags} DAGs of {-(-r['tasks'] // dags)}" if dags > 1 else " in one DAG"
        label = f"{r['tasks']:,} sensors{where}, " + (
            labels[name] or f"{r['mode']}{'=True' if r['mode'] else ''}"
        )
        rss = " / ".join(fmt(v, 0) for v in r["triggerer_rss_peak_mib"].values())
        lines.append(
            f"| {label} | {r['worker_runs']:,} | {fmt(r['latency_p50_s'])} / {fmt(r['latency_p95_s'])} "
            f"({fmt(r['latency_max_s'])}) | {fmt(r['triggerer_cpu_s'])} ({fmt(r.get('triggerer_cpu_net_s'))}) | "
            f"{rss} | {fmt(r['total_cpu_per_task_s'], 3)} ({fmt(r.get('total_cpu_net_per_task_s'), 3)}) | "
            f"{r['conn_calls_triggerers']} / {r['conn_calls_workers']} | {fmt(r['deferred_after_s'])} |"
        )
    lines.append("")
    if idle:
        lines.append(
            f"* Idle (30 s with nothing to do, before the phases): the two triggerers burn {idle_trig:.3f} CPU s "
            f"per second, the whole stack {sum(idle.values()):.3f} ({', '.join(f'{k} {v:.3f}' for k, v in idle.items())}); "
            "*net of idle* subtracts that rate times the phase's wall time."
        )
    for name in ("large", "small-deferrable", "small-sft"):
        r = phases.get(name)
        if r:
            lines.append(
                f"* `{name}` ({r['wall_s']:.0f} s): CPU s by service {r['cpu_by_service']}; runner peak RSS MiB "
                f"{r['runner_rss_peak_mib']}; worker runs before the scans started {r['worker_runs_to_defer']}; "
                f"`connection` table scans {r['connection_table_scans']}; stop calls {r['stop_calls']}."
            )
    f = phases.get("failover")
    if f:
        lines += [
            "",
            f"**Failover** ({f['sensors']} sensors with {f['mode']} + {f['operators']} deferred "
            f"`CodeCheckRunTaskOperator`s with `cancel_on_kill=True`, every scan still running): "
            f"{f['stopped_triggerer']}, holding {f['triggers_moved']} of the triggers, SIGSTOPped for "
            f"{f['stopped_for_s']} s (twice the threshold), then SIGCONT. The other triggerer adopted them; "
            f"stop calls **{f['stop_calls']}**; scans per task {f['scans_per_task']}; every verdict right: "
            f"**{'yes' if f['verdicts_right'] else 'NO'}**. On the woken triggerer Airflow called `on_kill` "
            f"of the triggers it had lost (apache/airflow#73454); the provider's guard logged "
            f'"the trigger moved to another triggerer" {f["on_kill_guard_lines_on_stopped_triggerer"]} times '
            f"(once per operator trigger it had held: a sensor's trigger has no `cancel_on_kill`) and stopped "
            f"{f['stopped_lines_on_stopped_triggerer']} scans.",
        ]
    m = phases.get("mark-failed")
    if m:
        lines += [
            "",
            f"**Mark failed**: a deferred `CodeCheckRunTaskOperator` (`cancel_on_kill=True`) marked failed through "
            f"`PATCH /api/v2/dags/.../taskInstances/{{task_id}}`: stop calls **{m['stop_calls']}** (exactly 1 "
            "expected), the scan shows stopped, the task stays failed.",
        ]
    lines += [
        "",
        "Checks: " + "; ".join(f"{'✅' if ok else '❌'} {name}" for name, ok, _ in report["checks"]) + ".",
        "<!-- scale:end -->",
    ]
    return "\n".join(lines) + "\n"


def write_benchmarks(section: str) -> None:
    path = REPO / "BENCHMARKS.md"
    text = path.read_text()
    pattern = re.compile(r"<!-- scale:begin.*?<!-- scale:end -->\n", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n## Real stack at scale (issue 13)\n\n" + section
    path.write_text(text)


# --- main -------------------------------------------------------------------------------------------------


def command_line() -> str:
    """How to repeat this run (the options that only keep files or write the report left out)."""
    sizes = [arg for arg in sys.argv[1:] if arg not in ("--keep", "--write-benchmarks")]
    return f"make e2e-scale SCALE_ARGS='{' '.join(sizes)}'" if sizes else "make e2e-scale"


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sensors", type=int, default=1000, help="sensors in the large DAG")
    parser.add_argument(
        "--large-dags",
        type=int,
        default=20,
        help="DAGs the large phase's sensors are split over (1: one DAG of --sensors tasks; see BENCHMARKS.md: "
        "with start_from_trigger on Airflow 3.3.2 that deadlocks the triggerers)",
    )
    parser.add_argument("--small", type=int, default=100, help="sensors in each small DAG (0: skip)")
    parser.add_argument("--failover-sensors", type=int, default=200)
    parser.add_argument("--failover-operators", type=int, default=10)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--defer-timeout", type=float, default=900)
    parser.add_argument("--end-timeout", type=float, default=300, help="seconds past the longest scan")
    parser.add_argument(
        "--only", nargs="*", help="phases to run (large small-deferrable small-sft failover mark-failed)"
    )
    parser.add_argument(
        "--scan-factor", type=float, default=1.0, help="multiplies every scan duration (a quick check: 0.3)"
    )
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--write-benchmarks", action="store_true")
    parser.add_argument("--from-report", type=Path, help="only render a saved scale-report.json (no run)")
    args = parser.parse_args()
    if args.from_report:
        section = markdown(json.loads(args.from_report.read_text()))
        print(section)
        if args.write_benchmarks:
            write_benchmarks(section)
        return 0
    sft = sensor_supports_start_from_trigger()
    big_mode = "start_from_trigger" if sft else "deferrable"
    phases = [
        Phase("small-deferrable", "scale_small_deferrable", args.small, mode="deferrable", scan_s=(20, 60)),
        Phase("small-sft", "scale_small_sft", args.small, mode="start_from_trigger", scan_s=(20, 60)),
        Phase(
            "large",
            f"scale_large_{args.sensors}",
            args.sensors,
            mode=big_mode,
            scan_s=(30, 150),
            dags=args.large_dags,
        ),
        Phase(
            "failover",
            "scale_failover",
            args.failover_sensors,
            operators=args.failover_operators,
            mode=big_mode,
            scan_s=(90, 150),
        ),
        Phase("mark-failed", "scale_mark_failed", 0, operators=1, scan_s=(600, 600)),
    ]
    for phase in phases:
        if phase.name != "mark-failed":
            phase.scan_s = (phase.scan_s[0] * args.scan_factor, phase.scan_s[1] * args.scan_factor)
    if not sft:
        log(
            "the installed CodeCheckTaskSensor has no start_from_trigger: skipping small-sft, large is deferrable"
        )
        phases = [p for p in phases if p.name != "small-sft"]
    if args.small <= 0:
        phases = [p for p in phases if not p.name.startswith("small")]
    if args.only:
        phases = [p for p in phases if p.name in args.only]
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="codecheck-scale-"))
    tmp.chmod(0o755)  # the postgres user must reach its data folder inside
    log(f"temp folder {tmp}; phases {[p.name for p in phases]}")
    run = ScaleRun(tmp, args)
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        run.start(phases)
        for phase in phases:
            if phase.name == "failover":
                run.failover_phase(phase)
            elif phase.name == "mark-failed":
                run.mark_failed_phase(phase)
            else:
                run.measure_phase(phase)
    except BaseException as error:  # report it as a failed check, then stop the stack
        run.checks.check("run completed", False, f"{type(error).__name__}: {error}")
    finally:
        log("stopping everything this run started")
        with contextlib.suppress(Exception):
            run.db.close()
        run.stack.close()
        signal.signal(signal.SIGTERM, previous)
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"`os.cpu_count()` = {os.cpu_count()}, Python {platform.python_version()}, "
        f"load average at the end {os.getloadavg()[0]:.2f}",
        "command": command_line(),
        "wall_min": (time.monotonic() - started) / 60,
        "parallelism": args.parallelism,
        "idle_cpu_per_s": {k: round(v, 4) for k, v in run.idle_cpu_per_s.items()},
        "phases": {p.name: p.results for p in phases if p.results},
        "checks": run.checks.results,
        "failed": bool(run.checks.failed),
    }
    (tmp / "scale-report.json").write_text(json.dumps(report, indent=2, default=str))
    section = markdown(report)
    print()
    print(section)
    if args.write_benchmarks:
        write_benchmarks(section)
        log("BENCHMARKS.md updated")
    failed = run.checks.failed
    for name, _, detail in failed:
        print(f"  FAILED: {name} ({detail})")
    print(
        f"{len(run.checks.results) - len(failed)} passed, {len(failed)} failed; report {tmp / 'scale-report.json'}"
    )
    if not failed and not args.keep:
        for path in tmp.iterdir():
            if path.name != "scale-report.json":
                import shutil

                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    return 1 if failed or not run.checks.results else 0


if __name__ == "__main__":
    sys.exit(main())
