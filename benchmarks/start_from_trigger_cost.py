"""What start_from_trigger adds in the triggerer, per trigger, measured without a running stack (Airflow 3.3.2).

For a task with ``start_from_trigger`` the 3.3.2 triggerer ships the whole serialized DAG with the trigger
(``RunTrigger.dag_data``) and, in the runner's event loop, rebuilds the DAG, builds a RuntimeTaskInstance and
its template context and renders the trigger's fields (``TriggerRunner.create_triggers`` / ``run_trigger``).
A worker deferral does none of this. This script times those steps, taken from Airflow's own code, for DAGs of
1 to 500 sensors; the full-stack figures (worker runs and CPU per sensor) come from the scale run.

    PYTHONPATH=. .venv/bin/python -m benchmarks.start_from_trigger_cost
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="sft-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

SIZES = (1, 20, 100, 500)
REPEAT = 15


def _dag(n_tasks: int) -> Any:
    import datetime

    from airflow.sdk import DAG

    from airflow_provider_codecheck.sensors.codecheck import CodeCheckTaskSensor

    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    with DAG(f"bench_{n_tasks}", schedule=None, start_date=start, params={"scan": "s"}) as dag:
        for i in range(n_tasks):
            CodeCheckTaskSensor(
                task_id=f"wait_{i}",
                codecheck_task_id="{{ params.scan }}-" + str(i),
                start_from_trigger=True,
                poke_interval=30,
            )
    return dag


def _median_ms(step: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEAT):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def measure(n_tasks: int) -> dict[str, float]:
    from airflow.executors.workloads.task import TaskInstanceDTO
    from airflow.executors.workloads.trigger import RunTrigger
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.serialization.decoders import smart_decode_trigger_kwargs
    from airflow.serialization.serialized_objects import DagSerialization

    from airflow_provider_codecheck.triggers.codecheck import CodeCheckTaskTrigger

    data = DagSerialization.to_dict(_dag(n_tasks))
    task = DagSerialization.from_dict(data).get_task("wait_0")
    raw = task.start_trigger_args.trigger_kwargs
    kwargs = {k: smart_decode_trigger_kwargs(v) for k, v in raw["__var"].items()}
    ti = TaskInstanceDTO(
        id=uuid.uuid4(),
        task_id="wait_0",
        dag_id=f"bench_{n_tasks}",
        run_id="r",
        try_number=1,
        map_index=-1,
        dag_version_id=uuid.uuid4(),
        pool_slots=1,
        priority_weight=1,
    )
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    run = {
        "dag_id": f"bench_{n_tasks}",
        "run_id": "r",
        "logical_date": now,
        "data_interval_start": now,
        "data_interval_end": now,
        "run_after": now,
        "start_date": now,
        "end_date": None,
        "run_type": "manual",
        "state": "running",
        "conf": {},
        "consumed_asset_events": [],
        "clear_number": 0,
        "partition_key": None,
    }
    workload = RunTrigger(id=1, classpath="x", encrypted_kwargs="x", ti=ti, dag_data=data, dag_run_data=run)
    plain = RunTrigger(id=1, classpath="x", encrypted_kwargs="x", ti=ti)
    encoded, plain_encoded = workload.model_dump_json(), plain.model_dump_json()

    def start_in_runner() -> None:  # TriggerRunner.create_triggers + run_trigger's render, start_from_trigger
        trigger = CodeCheckTaskTrigger(**kwargs)
        runtime_ti = TriggerRunner.create_runtime_ti(ti, data, run)
        context = runtime_ti.get_template_context()
        trigger.task_instance = runtime_ti
        trigger.render_template_fields(context=context)

    def start_deferred() -> None:  # the same steps for a worker's deferral
        trigger = CodeCheckTaskTrigger(**kwargs)
        trigger.task_instance = ti  # type: ignore[assignment]

    return {
        "workload_kb": len(encoded) / 1024,
        "plain_workload_kb": len(plain_encoded) / 1024,
        "encode_ms": _median_ms(workload.model_dump_json),
        "decode_ms": _median_ms(lambda: RunTrigger.model_validate_json(encoded)),
        "runner_ms": _median_ms(start_in_runner),
        "deferred_runner_ms": _median_ms(start_deferred),
    }


def main() -> None:
    import airflow

    print(f"Airflow {airflow.__version__}, Python {sys.version.split()[0]}, median of {REPEAT}")
    print("| sensors in the DAG | workload KiB (deferral) | encode ms | decode ms | runner ms (deferral) |")
    print("|---:|---:|---:|---:|---:|")
    for n_tasks in SIZES:
        m = measure(n_tasks)
        print(
            f"| {n_tasks} | {m['workload_kb']:.1f} ({m['plain_workload_kb']:.1f}) | {m['encode_ms']:.2f} "
            f"| {m['decode_ms']:.2f} | {m['runner_ms']:.2f} ({m['deferred_runner_ms']:.3f}) |"
        )


if __name__ == "__main__":
    main()
