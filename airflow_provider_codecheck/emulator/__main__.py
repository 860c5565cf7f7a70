"""Command line: ``python -m airflow_provider_codecheck.emulator [options]``.

The first stdout line is the base URL (flushed at once, so a parent process can read it and go); with
``--tls`` a second line ``CA file: <path>`` follows. SIGTERM and SIGINT stop the server with exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from airflow_provider_codecheck.emulator import defaults
from airflow_provider_codecheck.emulator.defaults import AccessKey, EmulatorConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_codecheck.emulator",
        description="Local emulator of Huawei Cloud CodeArts Check and IAM.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a generated self-signed CA")
    parser.add_argument("--iam-user", default=defaults.IAM_USER)
    parser.add_argument("--iam-password", default=defaults.IAM_PASSWORD)
    parser.add_argument("--iam-domain", default=defaults.IAM_DOMAIN)
    parser.add_argument("--ak", default=defaults.ACCESS_KEY)
    parser.add_argument("--sk", default=defaults.SECRET_KEY)
    parser.add_argument("--security-token", default=None, help="require this X-Security-Token with the AK")
    parser.add_argument("--token-lifetime", type=float, default=defaults.TOKEN_LIFETIME_S, metavar="SECONDS")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault plans' random generators")
    parser.add_argument("--auto-create", action="store_true", help="unknown task ids get a finished task")
    parser.add_argument(
        "--unknown-task",
        choices=defaults.UNKNOWN_TASK_MODES,
        default="documented",
        help="answer for unknown task ids: documented = 200 CC.00050002 (default), http_404 = 404 CC.00000404",
    )
    parser.add_argument(
        "--null-fields",
        choices=defaults.NULL_FIELD_MODES,
        default="null",
        help="fields without a value: null = sent as JSON null (default), absent = left out",
    )
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        iam_user=args.iam_user,
        iam_password=args.iam_password,
        iam_domain=args.iam_domain,
        access_keys={args.ak: AccessKey(args.sk, args.security_token)},
        token_lifetime_s=args.token_lifetime,
        seed=args.seed,
        auto_create=args.auto_create,
        unknown_task=args.unknown_task,
        null_fields=args.null_fields,
    )


async def serve(args: argparse.Namespace) -> None:
    from airflow_provider_codecheck.emulator.server import AsyncEmulator

    emulator = AsyncEmulator(args.host, args.port, tls_enabled=args.tls, config=config_from(args))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await emulator.start()
    try:
        print(emulator.base_url, flush=True)
        if emulator.tls_files is not None:
            print(f"CA file: {emulator.tls_files.ca_file}", flush=True)
        await stop.wait()
    finally:
        await emulator.close()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
