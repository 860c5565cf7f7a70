"""The two comparison points of the triggerer benchmark; neither imports the provider's transport.

* ``DbtStyleTrigger`` (baseline a): a trigger written the way ``apache-airflow-providers-dbt-cloud``'s
  ``DbtCloudRunJobTrigger`` + ``DbtCloudHook.get_job_details`` poll: every poll looks the connection up
  again and opens a NEW ``aiohttp.ClientSession`` (so a new TCP connection and TLS handshake), then logs
  one line. Authentication is the same IAM password token as ours, cached per process behind a lock (one IAM
  call), which is kinder to the baseline than a fetch per poll. The CA bundle's ``SSLContext`` is also
  built once per process (dbt-cloud has no CA option; building it per poll would cost it more).
* ``floor_wait`` (baseline b): the least a poller can do: one shared keep-alive session with the same pool
  size as ours, a token fetched once up front, ``response.json()`` and a status check, nothing else.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from airflow.triggers.base import BaseTrigger, TriggerEvent

TERMINAL = {1: "failed", 2: "success", 3: "stopped"}
POOL_SIZE = 100  # same as airflow_provider_codecheck.transport.aio.POOL_SIZE, so handshake counts compare


def iam_body(login: str, password: str, domain: str) -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": login, "password": password, "domain": {"name": domain}}},
            },
            "scope": {"domain": {"name": domain}},
        }
    }


_SSL: dict[str, ssl.SSLContext] = {}
_TOKENS: dict[tuple[str, str, str], str] = {}
_TOKEN_LOCK: asyncio.Lock | None = None


def ssl_for(ca_file: str | None) -> ssl.SSLContext | bool:
    if not ca_file:
        return True
    if ca_file not in _SSL:
        _SSL[ca_file] = ssl.create_default_context(cafile=ca_file)
    return _SSL[ca_file]


def reset_caches() -> None:
    """Forget tokens (after a warm-up) so a measured run fetches its own."""
    global _TOKEN_LOCK
    _TOKENS.clear()
    _TOKEN_LOCK = None


async def fetch_token(
    session: aiohttp.ClientSession, iam_url: str, body: dict[str, Any], ssl_ctx: Any
) -> str:
    async with session.post(f"{iam_url}/v3/auth/tokens?nocatalog=true", json=body, ssl=ssl_ctx) as response:
        response.raise_for_status()
        await response.read()
        return response.headers["X-Subject-Token"]


class DbtStyleTrigger(BaseTrigger):
    """Baseline (a): connection lookup + new ClientSession per poll, as dbt-cloud's trigger/hook do."""

    def __init__(self, codecheck_task_id: str, conn_id: str, poll_interval: float) -> None:
        super().__init__()
        self.codecheck_task_id = codecheck_task_id
        self.conn_id = conn_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "codecheck_task_id": self.codecheck_task_id,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def _token(self, login: str, password: str, domain: str, iam_url: str, ssl_ctx: Any) -> str:
        global _TOKEN_LOCK
        key = (iam_url, login, domain)
        if _TOKEN_LOCK is None:
            _TOKEN_LOCK = asyncio.Lock()
        async with _TOKEN_LOCK:
            if key not in _TOKENS:
                async with aiohttp.ClientSession() as session:
                    _TOKENS[key] = await fetch_token(
                        session, iam_url, iam_body(login, password, domain), ssl_ctx
                    )
            return _TOKENS[key]

    async def get_status(self) -> int | None:
        from airflow.providers.common.compat.connection import get_async_connection

        self.log.info("Getting the status of CodeArts task %s.", self.codecheck_task_id)
        conn = await get_async_connection(self.conn_id)  # every poll, like dbt-cloud's hook did
        extra = conn.extra_dejson
        base_url = str(conn.host).rstrip("/")
        ssl_ctx = ssl_for(extra.get("ca_bundle"))
        token = await self._token(
            str(conn.login), str(conn.password), extra["domain_name"], extra["iam_endpoint"], ssl_ctx
        )
        headers = {"X-Auth-Token": token, "Content-Type": "application/json"}
        url = f"{base_url}/v2/tasks/{self.codecheck_task_id}/progress"
        async with (
            aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.get(url, ssl=ssl_ctx) as response,
        ):
            response.raise_for_status()
            body = await response.json()
        status: int | None = body["task_status"]
        return status

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            while True:
                status = await self.get_status()
                if status in TERMINAL:
                    yield TriggerEvent({"status": TERMINAL[status], "task_id": self.codecheck_task_id})
                    return
                await asyncio.sleep(self.poll_interval)
        except Exception as error:
            yield TriggerEvent({"status": "error", "message": str(error), "task_id": self.codecheck_task_id})


class Floor:
    """Baseline (b): one shared keep-alive session and one token for every wait."""

    def __init__(self, base_url: str, ca_file: str | None) -> None:
        self.base_url = base_url
        self.ssl_ctx = ssl_for(ca_file)
        self.session: aiohttp.ClientSession | None = None
        self.headers: dict[str, str] = {}

    async def start(self, login: str, password: str, domain: str) -> None:
        connector = aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=120.0, ssl=self.ssl_ctx)
        self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))
        token = await fetch_token(
            self.session, self.base_url, iam_body(login, password, domain), self.ssl_ctx
        )
        self.headers = {"X-Auth-Token": token}

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def _status(self, url: str) -> int | None:
        # A function of its own, so the response is released before the wait sleeps.
        assert self.session is not None
        async with self.session.get(url, headers=self.headers) as response:
            body = await response.json()
        status: int | None = body["task_status"]
        return status

    async def wait(self, task_id: str, poll_interval: float) -> AsyncIterator[dict[str, Any]]:
        url = f"{self.base_url}/v2/tasks/{task_id}/progress"
        while True:
            status = await self._status(url)
            if status in TERMINAL:
                yield {"status": TERMINAL[status]}
                return
            await asyncio.sleep(poll_interval)
