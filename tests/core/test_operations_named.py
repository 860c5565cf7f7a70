"""Operations declared once (core/operations.py): the clients and the hook name none of them themselves."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest

# The emulator-backed ``codecheck_default`` connection (tests/core is on sys.path: no __init__.py in tests).
from test_waiting import connection  # noqa: F401 (a fixture)

from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.operations import NamedOperation, NamedOperations, Operation


def _factories() -> dict[str, Any]:
    """Every public function of core/operations.py that builds an Operation."""
    found = {}
    for name, function in vars(ops).items():
        if name.startswith("_") or not inspect.isfunction(function) or function.__module__ != ops.__name__:
            continue
        returns = typing.get_type_hints(function).get("return")
        if typing.get_origin(returns) is Operation:
            found[name] = function
    return found


def test_every_operation_is_named_once_and_under_its_own_name() -> None:
    named = {name: attr for name, attr in vars(NamedOperations).items() if isinstance(attr, NamedOperation)}
    assert {name: attr.build for name, attr in named.items()} == _factories()


class SyncRecorder(NamedOperations):
    def execute(self, op: Operation[Any]) -> Operation[Any]:
        return op


class AsyncRecorder(NamedOperations):
    async def execute(self, op: Operation[Any]) -> Operation[Any]:
        return op


async def test_a_name_runs_execute_with_the_operation_sync_or_async() -> None:
    assert SyncRecorder().get_task_progress("t1", "j1") == ops.get_task_progress("t1", "j1")
    assert SyncRecorder().run_task("t1", body={"a": 1}) == ops.run_task("t1", {"a": 1})
    assert await AsyncRecorder().stop_task("t1") == ops.stop_task("t1")
    assert SyncRecorder().get_scan_summary("t1") == ops.get_defects_summary("t1")  # no job_id: the latest
    assert SyncRecorder().get_scan_summary("t1", "j1").call.query == (("job_id", "j1"),)


def test_the_names_keep_the_factory_signature_and_docs() -> None:
    method = SyncRecorder().get_task_progress
    assert inspect.signature(method) == inspect.signature(ops.get_task_progress)
    assert method.__doc__ == ops.get_task_progress.__doc__
    assert NamedOperations.get_task_progress.__doc__ == ops.get_task_progress.__doc__


def test_clients_and_hook_inherit_the_names() -> None:
    from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
    from airflow_provider_codecheck.transport.aio import AsyncClient
    from airflow_provider_codecheck.transport.sync import SyncClient

    for cls in (SyncClient, AsyncClient, CodeCheckHook):
        assert issubclass(cls, NamedOperations)
        # None of them defines an operation of its own: a new endpoint is added in core/operations.py only.
        assert not set(vars(cls)) & set(_factories()), cls


@pytest.mark.usefixtures("connection")
def test_hook_names_run_over_the_wire(codecheck_emulator_clean: Any) -> None:
    from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook

    codecheck_emulator_clean.add_task(task_id="named", initial_status=2, duration_s=30)
    hook = CodeCheckHook()
    assert hook.get_task_progress("named").status.wire == 2
    assert hook.get_scan_summary("named").raw == hook.get_defects_summary("named").raw
    assert hook.execute(ops.get_task_progress("named")).status.wire == 2
