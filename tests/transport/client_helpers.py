"""Helpers of the client tests (a uniquely named module: ``conftest`` is not importable by name)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from airflow_provider_codecheck import testing
from airflow_provider_codecheck.core.iam import TokenCache
from airflow_provider_codecheck.core.retry import RetryPolicy
from airflow_provider_codecheck.core.settings import ConnectionSettings
from airflow_provider_codecheck.emulator.server import EmulatorServer
from airflow_provider_codecheck.transport.aio import AsyncClient
from airflow_provider_codecheck.transport.sync import SyncClient

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_elapsed=5)
"""Tiny backoff so retry tests take milliseconds."""

TRANSPORTS = ("sync", "async")
TASK = "t1"
TIMEOUT = 10.0

# Distinctive credentials of the "secret" emulator: any of these in a repr, log line or message is a leak.
SECRET_USER = "leakcheck-user"
SECRET_DOMAIN = "leakcheck-domain"
SECRET_PASSWORD = "pw-Zq8sLEAKCANARY-password-7731"
SECRET_AK = "LEAKCHECKAK000000001"
SECRET_SK = "sk-Xv3LEAKCANARY-secretkey-000000000000000"
TEMP_AK = "LEAKCHECKTEMPAK00002"
TEMP_SK = "sk-Tm9LEAKCANARY-tempsecret-0000000000000"
SECURITY_TOKEN = "st-Kp5LEAKCANARY-securitytoken-4242"
IAM_PROJECT_ID = "0123456789abcdef0123456789abcdef"


def _settings(emulator: EmulatorServer, auth_type: testing.AuthType, **kwargs: Any) -> ConnectionSettings:
    return testing.connection_settings(emulator.base_url, auth_type, **{"timeout": TIMEOUT, **kwargs})


def token_settings(emulator: EmulatorServer, token: str, **extra: Any) -> ConnectionSettings:
    return _settings(emulator, "token", token=token, **extra)


def password_settings(
    emulator: EmulatorServer,
    user: str = testing.IAM_USER,
    password: str = testing.IAM_PASSWORD,
    domain: str = testing.IAM_DOMAIN,
    **extra: Any,
) -> ConnectionSettings:
    return _settings(emulator, "password", login=user, password=password, domain_name=domain, **extra)


def aksk_settings(
    emulator: EmulatorServer, ak: str = testing.ACCESS_KEY, sk: str = testing.SECRET_KEY, **extra: Any
) -> ConnectionSettings:
    return _settings(emulator, "aksk", login=ak, password=sk, **extra)


def settings_for(mode: str, emulator: EmulatorServer, **extra: Any) -> ConnectionSettings:
    """Good credentials of the default emulator for auth mode ``mode``."""
    if mode == "token":
        return token_settings(emulator, emulator.issue_token(), **extra)
    if mode == "password":
        return password_settings(emulator, **extra)
    return aksk_settings(emulator, **extra)


def invoke(
    transport: str,
    settings: ConnectionSettings,
    method: str,
    *args: Any,
    policy: RetryPolicy = FAST,
    cache: TokenCache | None = None,
    observe: Callable[[Any], None] | None = None,
) -> Any:
    """Call ``client.<method>(*args)`` through a fresh SyncClient or AsyncClient (own event loop).

    ``observe`` (sync only) sees every requests.Response, for checking what went over the wire.
    """
    cache = TokenCache() if cache is None else cache
    if transport == "sync":
        client = SyncClient(settings, policy, token_cache=cache)
        if observe is not None:
            client._session.hooks["response"].append(lambda response, *a, **k: observe(response))
        try:
            return getattr(client, method)(*args)
        finally:
            client.close()

    async def go() -> Any:
        async with AsyncClient(settings, policy, token_cache=cache) as client:
            return await getattr(client, method)(*args)

    return asyncio.run(go())
