"""Admin API under ``/_emulator/`` (no authentication): tasks, faults, tokens, reset, stats.

* ``POST /_emulator/tasks``          task spec → 201 task JSON (creates or replaces)
* ``GET  /_emulator/tasks/{id}``     → task JSON (status, progress, last_exec_id, runs) or 404
* ``POST /_emulator/tasks/{id}/commit`` ``{"duration_s"?, "final_status"?, "defects"?}`` → 201 ``{"exec_id",
  "task"}``: a scan started outside the API ("a commit started a scan"); 404 unknown task, 409 while running
* ``POST /_emulator/faults``         ``{"seed": 42, "faults": [...]}`` → replaces the global fault plan
* ``POST /_emulator/reset``          clears tasks, faults, tokens and stats
* ``POST /_emulator/tokens``         ``{"lifetime_s": 3600}`` → 201 ``{"token": ...}``
* ``POST /_emulator/expire-tokens``  expires every issued token now
* ``POST /_emulator/revoke-tokens``  ``{"tokens": [...]?, "code": "APIGW.0301"}`` → ``{"revoked": n}``
* ``POST /_emulator/quota``          ``{"rate", "burst", "scope", "retry_after_form"}`` → the quota now in force
* ``POST /_emulator/shape``          ``{"null_fields": "null" | "absent"}``
* ``GET  /_emulator/stats``          counters, see ``Stats.snapshot``
* ``GET  /_emulator/health``         ``{"status": "ok"}``
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_provider_codecheck.emulator.faults import FaultSpecError
from airflow_provider_codecheck.emulator.quota import QuotaSpecError
from airflow_provider_codecheck.emulator.service import EmulatorService
from airflow_provider_codecheck.emulator.state import SpecError


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error_code": "EMULATOR.400", "error_msg": message}, status=400)


async def _json_object(request: web.Request) -> dict[str, Any]:
    if not await request.read():
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def add_admin_routes(app: web.Application, key: web.AppKey[EmulatorService]) -> None:
    def service(request: web.Request) -> EmulatorService:
        return request.app[key]

    async def put_task(request: web.Request) -> web.Response:
        try:
            task = service(request).put_task(await _json_object(request))
        except (ValueError, SpecError, FaultSpecError) as err:
            return _bad_request(str(err))
        return web.json_response(task, status=201)

    async def get_task(request: web.Request) -> web.Response:
        svc = service(request)
        task = svc.tasks.get(request.match_info["task_id"])
        if task is None:
            return web.json_response({"error_code": "EMULATOR.404", "error_msg": "no such task"}, status=404)
        return web.json_response(svc.task_json(task))

    async def commit(request: web.Request) -> web.Response:
        try:
            answer = service(request).commit(request.match_info["task_id"], await _json_object(request))
        except KeyError:
            return web.json_response({"error_code": "EMULATOR.404", "error_msg": "no such task"}, status=404)
        except SpecError as err:
            return web.json_response({"error_code": "EMULATOR.409", "error_msg": str(err)}, status=409)
        except ValueError as err:
            return _bad_request(str(err))
        return web.json_response(answer, status=201)

    async def set_faults(request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            seed = body.get("seed")
            if seed is not None and not isinstance(seed, int):
                raise ValueError("seed must be an integer")
            service(request).set_faults(body.get("faults") or [], seed)
        except (ValueError, FaultSpecError) as err:
            return _bad_request(str(err))
        return web.json_response({"faults": len(body.get("faults") or []), "seed": seed})

    async def reset(request: web.Request) -> web.Response:
        service(request).reset()
        return web.json_response({})

    async def issue_token(request: web.Request) -> web.Response:
        try:
            lifetime = (await _json_object(request)).get("lifetime_s")
            if lifetime is not None and not isinstance(lifetime, (int, float)):
                raise ValueError("lifetime_s must be a number")
        except ValueError as err:
            return _bad_request(str(err))
        return web.json_response({"token": service(request).issue_token(lifetime)}, status=201)

    async def expire_tokens(request: web.Request) -> web.Response:
        service(request).tokens.expire_all()
        return web.json_response({})

    async def revoke_tokens(request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            revoked = service(request).revoke_tokens(body.get("tokens"), body.get("code", "APIGW.0301"))
        except (ValueError, FaultSpecError) as err:
            return _bad_request(str(err))
        return web.json_response({"revoked": len(revoked)})

    async def set_quota(request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            unknown = sorted(set(body) - {"rate", "burst", "scope", "retry_after_form"})
            if unknown:
                raise ValueError(f"unknown quota keys {unknown}")
            quota = service(request).quota.configure(
                body.get("rate"),
                body.get("burst"),
                body.get("scope", "api"),
                body.get("retry_after_form", "seconds"),
            )
        except (ValueError, QuotaSpecError) as err:
            return _bad_request(str(err))
        return web.json_response(quota)

    async def set_shape(request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            service(request).set_null_fields(body.get("null_fields", "null"))
        except ValueError as err:
            return _bad_request(str(err))
        return web.json_response({"null_fields": service(request).null_fields})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(service(request).stats_snapshot())

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    router = app.router
    router.add_post("/_emulator/tasks", put_task)
    router.add_get("/_emulator/tasks/{task_id}", get_task)
    router.add_post("/_emulator/tasks/{task_id}/commit", commit)
    router.add_post("/_emulator/faults", set_faults)
    router.add_post("/_emulator/reset", reset)
    router.add_post("/_emulator/tokens", issue_token)
    router.add_post("/_emulator/expire-tokens", expire_tokens)
    router.add_post("/_emulator/revoke-tokens", revoke_tokens)
    router.add_post("/_emulator/quota", set_quota)
    router.add_post("/_emulator/shape", set_shape)
    router.add_get("/_emulator/stats", stats)
    router.add_get("/_emulator/health", health)
