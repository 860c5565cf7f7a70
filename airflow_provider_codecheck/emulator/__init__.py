"""Local emulator of Huawei Cloud CodeArts Check and IAM (aiohttp), for tests, demos and load checks.

Importing this package is cheap on purpose: the pytest plugin imports it in every pytest run, so the aiohttp
server code is only loaded when ``EmulatorServer`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_codecheck.emulator.server import EmulatorServer

__all__ = ["EmulatorServer"]


def __getattr__(name: str) -> Any:
    if name == "EmulatorServer":
        from airflow_provider_codecheck.emulator.server import EmulatorServer

        return EmulatorServer
    raise AttributeError(name)
