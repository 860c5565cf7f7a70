"""Fault injection: each kind, count/probability semantics, routes, per-task plans, determinism under a seed."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_codecheck.emulator.faults import KINDS
from airflow_provider_codecheck.emulator.server import EmulatorServer

# kind -> (HTTP status, error_code or None for a non-JSON body)
CANNED = {
    "busy_400": (400, "CC.00000000"),
    "busy_200": (200, "CC.00050012"),
    "throttle_429": (429, "APIGW.0308"),
    "http_500": (500, "APIGW.0500"),
    "http_502": (502, "APIGW.0502"),
    "http_503": (503, "APIGW.0503"),
    "token_expired": (401, "CC.00000003"),
    "forbidden_403": (403, "APIGW.0302"),
    "not_found_404": (404, "CC.00000404"),
    "no_permission_200": (200, "CC.00050010"),
    "project_missing_200": (200, "CC.00050013"),
}


@pytest.fixture
def task(emulator_api):
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    return "t1"


def test_every_kind_is_covered_by_these_tests():
    special = {"running_200", "html_502", "reset", "slow", "malformed_json", "unknown_status"}
    special |= {"token_rejected", "gateway_timeout_504", "reset_after", "trickle", "huge_body"}
    special |= {"extra_fields", "odd_ratio"}  # tested in test_emulator_gateway.py / test_emulator_shapes.py
    assert set(CANNED) | special == KINDS


@pytest.mark.parametrize("kind", sorted(CANNED))
def test_canned_json_faults(emulator_api, task, kind):
    emulator_api.server.set_faults([{"kind": kind, "count": 1}])
    response = emulator_api.get(f"/v2/tasks/{task}/progress")
    status, code = CANNED[kind]
    assert response.status_code == status
    assert response.json()["error_code"] == code
    assert response.headers["X-Request-Id"]
    assert emulator_api.get(
        f"/v2/tasks/{task}/progress", headers={"X-Auth-Token": emulator_api.server.issue_token()}
    ).ok
    stats = emulator_api.server.stats()
    assert stats["faults_injected"] == {kind: 1}
    assert stats["requests"][f"progress {status}"] >= 1


def test_throttle_sets_retry_after(emulator_api, task):
    # The body follows Huawei's documented APIG.0308 wording and carries request_id like every gateway error
    # (formerly {"error_code": "APIGW.0308", "error_msg": "throttled"}; gateway-and-quotas.md proves it wrong).
    emulator_api.server.set_faults([{"kind": "throttle_429", "count": 1, "retry_after": 3}])
    response = emulator_api.get(f"/v2/tasks/{task}/progress")
    assert response.headers["Retry-After"] == "3"
    assert response.json() == {
        "error_code": "APIGW.0308",
        "error_msg": "The throttling threshold has been reached: policy user over ratelimit,limit:10,time:1 second",
        "request_id": response.headers["X-Request-Id"],
    }


def test_running_200_defaults_to_run_only(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "running_200", "count": 1}])
    assert emulator_api.progress(task)["task_status"] == 2
    response = emulator_api.run(task)
    assert (response.status_code, response.json()["error_code"]) == (200, "CC.00050015")
    assert emulator_api.server.stats()["runs"] == {}, "a faulted run never reaches the task"
    assert "exec_id" in emulator_api.run(task).json()


def test_html_502(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "html_502", "count": 1}])
    response = emulator_api.get(f"/v2/tasks/{task}/progress")
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text


def test_malformed_json(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "malformed_json", "count": 1}])
    response = emulator_api.get(f"/v2/tasks/{task}/progress")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        response.json()


def test_unknown_status(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "unknown_status", "count": 1}])
    assert emulator_api.progress(task)["task_status"] == 7


def test_reset_drops_the_connection(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "reset", "count": 1}])
    with pytest.raises(requests.ConnectionError):
        emulator_api.get(f"/v2/tasks/{task}/progress")
    assert emulator_api.progress(task)["task_status"] == 2
    stats = emulator_api.server.stats()
    assert stats["requests"]["progress reset"] == 1
    assert stats["faults_injected"] == {"reset": 1}


def test_slow_times_the_client_out(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "slow", "count": 1, "delay_s": 5}])
    with pytest.raises(requests.Timeout):
        emulator_api.get(f"/v2/tasks/{task}/progress", timeout=0.3)
    emulator_api.session.close()  # the timed-out connection is unusable
    assert emulator_api.progress(task)["task_status"] == 2


def test_slow_answers_normally_after_the_delay(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "slow", "count": 1, "delay_s": 0.2}])
    assert emulator_api.progress(task)["task_status"] == 2


def test_token_expired_kills_tokens(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "token_expired", "count": 1}])
    assert emulator_api.get(f"/v2/tasks/{task}/progress").status_code == 401
    response = emulator_api.get(f"/v2/tasks/{task}/progress")
    assert response.status_code == 401, "the old token stays dead after the fault"
    assert emulator_api.server.stats()["faults_injected"] == {"token_expired": 1}
    assert emulator_api.server.stats()["auth_failures"] == 1


def test_count_applies_to_the_next_n_matching_requests(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "busy_400", "count": 2, "routes": ["defects_summary"]}])
    assert emulator_api.get(f"/v2/tasks/{task}/progress").status_code == 200
    codes = [emulator_api.get(f"/v2/tasks/{task}/defects-summary").status_code for _ in range(3)]
    assert codes == [400, 400, 200]


def test_faults_do_not_hit_unauthenticated_requests(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "http_503", "count": 1}])
    response = requests.get(f"{emulator_api.base_url}/v2/tasks/{task}/progress", timeout=10)
    assert response.status_code == 401
    assert emulator_api.get(f"/v2/tasks/{task}/progress").status_code == 503


def test_iam_route_faults_are_opt_in(emulator_api):
    emulator_api.server.set_faults([{"kind": "http_503", "count": 5}])
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {}}}}}
    assert requests.post(f"{emulator_api.base_url}/v3/auth/tokens", json=body, timeout=10).status_code == 401
    emulator_api.server.set_faults([{"kind": "http_503", "count": 1, "routes": ["iam"]}])
    assert requests.post(f"{emulator_api.base_url}/v3/auth/tokens", json=body, timeout=10).status_code == 503


def test_per_task_faults_only_hit_that_task(emulator_api):
    emulator_api.server.add_task(
        task_id="flaky", initial_status=2, faults=[{"kind": "busy_200", "probability": 1}]
    )
    emulator_api.server.add_task(task_id="fine", initial_status=2)
    assert emulator_api.get("/v2/tasks/flaky/progress").json()["error_code"] == "CC.00050012"
    assert emulator_api.progress("fine")["task_status"] == 2


def test_first_matching_spec_wins_and_task_plan_goes_first(emulator_api):
    emulator_api.server.add_task(task_id="t1", initial_status=2, faults=[{"kind": "busy_400", "count": 1}])
    emulator_api.server.set_faults([{"kind": "http_500", "count": 1}, {"kind": "http_502", "count": 1}])
    codes = [emulator_api.get("/v2/tasks/t1/progress").status_code for _ in range(4)]
    assert codes == [400, 500, 502, 200]


def fault_sequence(server: EmulatorServer, seed: int, n: int = 60) -> list[int]:
    server.reset()
    server.add_task(task_id="t1", initial_status=2)
    server.set_faults(
        [{"kind": "busy_400", "probability": 0.3}, {"kind": "http_503", "probability": 0.2}], seed
    )
    with requests.Session() as session:
        session.headers["X-Auth-Token"] = server.issue_token()
        return [
            session.get(f"{server.base_url}/v2/tasks/t1/progress", timeout=10).status_code for _ in range(n)
        ]


def test_probability_faults_are_deterministic_under_a_seed(emulator):
    first = fault_sequence(emulator, seed=42)
    assert fault_sequence(emulator, seed=42) == first
    assert fault_sequence(emulator, seed=7) != first
    assert {200, 400, 503} <= set(first)
    assert 8 <= first.count(400) <= 30, "roughly 30% of 60"


def test_probability_zero_never_fires(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "busy_400", "probability": 0}])
    assert all(emulator_api.get(f"/v2/tasks/{task}/progress").ok for _ in range(20))


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "nonsense", "count": 1},
        {"kind": "busy_400"},
        {"kind": "busy_400", "count": 1, "probability": 0.5},
        {"kind": "busy_400", "probability": 1.5},
        {"kind": "busy_400", "count": 1, "routes": ["admin"]},
    ],
    ids=str,
)
def test_invalid_fault_specs_are_rejected_over_http(emulator, spec):
    response = requests.post(f"{emulator.base_url}/_emulator/faults", json={"faults": [spec]}, timeout=10)
    assert response.status_code == 400
    response = requests.post(
        f"{emulator.base_url}/_emulator/tasks", json={"task_id": "x", "faults": [spec]}, timeout=10
    )
    assert response.status_code == 400
