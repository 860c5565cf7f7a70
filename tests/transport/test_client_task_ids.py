"""Task ids that could escape the URL path are refused before anything is sent."""

from __future__ import annotations

import asyncio

import client_helpers as h
import pytest

from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.errors import BadRequestError, InvalidTaskIdError
from airflow_provider_codecheck.core.iam import TokenCache
from airflow_provider_codecheck.hooks.codecheck import CodeCheckHook
from airflow_provider_codecheck.testing import connection_env
from airflow_provider_codecheck.transport.aio import AsyncClient
from airflow_provider_codecheck.transport.sync import SyncClient

BAD_IDS = [
    "",
    "a/b",
    "../x",
    "..",
    "a..b",
    "a b",
    "a\n",
    "a\tb",
    "a\x00b",
    "a\x7fb",
    "a\\b",
    "%2e%2e/x",
    "x" * 129,
    None,
    123,
    b"t1",
    ["t1"],
]
OPERATIONS = ["get_task_progress", "run_task", "stop_task", "get_defects_summary", "get_defects_statistic"]


@pytest.mark.parametrize("task_id", BAD_IDS, ids=repr)
def test_validate_task_id_rejects(task_id):
    # A CodeCheckError (so a trigger's "except CodeCheckError" reports it) that is also a ValueError,
    # permanent: retrying a bad id never helps.
    with pytest.raises(InvalidTaskIdError) as caught:
        ops.validate_task_id(task_id)
    assert isinstance(caught.value, BadRequestError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.retryable is False


@pytest.mark.parametrize("task_id", ["t1", "x" * 128, "a.b-c_d~e", "%41", "ünï", "0" * 32])
def test_validate_task_id_accepts(task_id):
    assert ops.validate_task_id(task_id) == task_id


def test_accepted_ids_are_percent_encoded_into_one_segment():
    assert ops.get_task_progress("%41?x=1#y").call.path == "/v2/tasks/%2541%3Fx%3D1%23y/progress"


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("mode", ["token", "password", "aksk"])
def test_clients_send_nothing_for_a_bad_id(emulator_with_t1, transport, mode):
    settings = h.settings_for(mode, emulator_with_t1)
    if transport == "sync":
        client = SyncClient(settings, h.FAST, token_cache=TokenCache())
        for task_id in BAD_IDS:
            for method in OPERATIONS:
                with pytest.raises(ValueError):
                    getattr(client, method)(task_id)
        client.close()
    else:

        async def go() -> None:
            async with AsyncClient(settings, h.FAST, token_cache=TokenCache()) as client:
                for task_id in BAD_IDS:
                    for method in OPERATIONS:
                        with pytest.raises(ValueError):
                            await getattr(client, method)(task_id)

        asyncio.run(go())
    stats = emulator_with_t1.stats()
    assert stats["requests_total"] == 0
    assert stats["iam_tokens_issued"] == 0
    assert stats["connections"] == 0


def test_hook_sends_nothing_for_a_bad_id(emulator_with_t1, monkeypatch):
    token = emulator_with_t1.issue_token()
    monkeypatch.setenv(
        *connection_env("cc_ids", emulator_with_t1.base_url, "token", token=token, timeout=h.TIMEOUT)
    )
    hook = CodeCheckHook(codecheck_conn_id="cc_ids", retry_policy=h.FAST)
    for task_id in BAD_IDS:
        for method in OPERATIONS:
            with pytest.raises(ValueError):
                getattr(hook, method)(task_id)
        # The wait reports the permanent error as its event (as the trigger does) instead of raising.
        event = hook.wait_for_scan(task_id, poll_interval=0.01, timeout=1)
        assert event["status"] == "error"
        assert "task id" in event["message"]
    assert emulator_with_t1.stats()["requests_total"] == 0


def test_async_bad_id_inside_a_live_session(emulator_with_t1):
    async def go():
        async with AsyncClient(h.settings_for("aksk", emulator_with_t1), h.FAST) as client:
            for task_id in BAD_IDS:
                with pytest.raises(ValueError):
                    await client.get_task_progress(task_id)
            return await client.get_task_progress(h.TASK)

    assert asyncio.run(go()).ratio == 100
    assert emulator_with_t1.stats()["requests_total"] == 1
