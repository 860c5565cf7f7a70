"""The API gateway's 401s: token_rejected fault, revoked tokens, the AK/SK lock-out after 5 failures in a row."""

from __future__ import annotations

import pytest
import requests
from emulator_helpers import signed_request

from airflow_provider_codecheck.emulator import defaults

DECRYPT_FAIL = "Incorrect IAM authentication information: decrypt token fail"
MUST_UPDATE = "The token must be updated"
EXPIRED = "Authentication information expired."
SIGNATURE_FAIL = "Incorrect IAM authentication information: verify aksk signature fail"
AK_LOCKED = "Incorrect IAM authentication information: AK access failed to reach the limit,forbidden"

CODES = {
    "CC.00000003": EXPIRED,
    "APIG.0301": DECRYPT_FAIL,
    "APIGW.0301": DECRYPT_FAIL,
    "APIG.0307": MUST_UPDATE,
    "APIGW.0307": MUST_UPDATE,
}


def expected_body(code: str, response: requests.Response) -> dict:
    body = {"error_code": code, "error_msg": CODES[code]}
    if code.startswith("APIG"):  # gateway errors carry the request id in the body too
        body["request_id"] = response.headers["X-Request-Id"]
    return body


@pytest.fixture
def task(emulator_api):
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    return "t1"


# --- token_rejected fault ------------------------------------------------------------------------------------


def test_token_rejected_defaults_to_apigw_0301(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "token_rejected", "count": 1}])
    response = emulator_api.get("/v2/tasks/t1/progress")
    assert response.status_code == 401
    assert response.json() == expected_body("APIGW.0301", response)


@pytest.mark.parametrize("code", sorted(CODES))
def test_token_rejected_codes_and_documented_messages(emulator_api, task, code):
    emulator_api.server.set_faults([{"kind": "token_rejected", "count": 1, "code": code}])
    response = emulator_api.get("/v2/tasks/t1/progress")
    assert (response.status_code, response.json()) == (401, expected_body(code, response))
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 200, "the fault does not revoke the token"
    stats = emulator_api.server.stats()
    assert stats["faults_injected"] == {"token_rejected": 1}
    assert stats["requests"] == {"progress 401": 1, "progress 200": 1}


def test_token_rejected_never_hits_aksk_requests(emulator_api, task):
    emulator_api.server.set_faults([{"kind": "token_rejected", "count": 1}])
    url, headers = signed_request(emulator_api.base_url, "GET", "/v2/tasks/t1/progress")
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    assert emulator_api.server.stats()["faults_injected"] == {}
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 401, (
        "the count was not used up by the AK/SK call"
    )


def test_token_rejected_code_is_validated(emulator):
    response = requests.post(
        f"{emulator.base_url}/_emulator/faults",
        json={"faults": [{"kind": "token_rejected", "count": 1, "code": "APIG.9999"}]},
        timeout=10,
    )
    assert response.status_code == 400


# --- revoked tokens ------------------------------------------------------------------------------------------


def test_revoke_all_tokens_over_http(emulator_api, task):
    other = emulator_api.server.issue_token()
    response = requests.post(f"{emulator_api.base_url}/_emulator/revoke-tokens", json={}, timeout=10)
    assert response.json() == {"revoked": 2}
    for token in (emulator_api.session.headers["X-Auth-Token"], other):
        rejected = emulator_api.get("/v2/tasks/t1/progress", headers={"X-Auth-Token": token})
        assert (rejected.status_code, rejected.json()) == (401, expected_body("APIGW.0301", rejected))
    fresh = emulator_api.server.issue_token()
    assert emulator_api.get("/v2/tasks/t1/progress", headers={"X-Auth-Token": fresh}).status_code == 200
    stats = emulator_api.server.stats()
    assert stats["auth_failures"] == 2
    assert stats["tokens_revoked"] == 2


def test_revoke_chosen_tokens_with_a_code(emulator_api, task):
    victim = emulator_api.server.issue_token()
    response = requests.post(
        f"{emulator_api.base_url}/_emulator/revoke-tokens",
        json={"tokens": [victim], "code": "APIG.0307"},
        timeout=10,
    )
    assert response.json() == {"revoked": 1}
    rejected = emulator_api.get("/v2/tasks/t1/progress", headers={"X-Auth-Token": victim})
    assert (rejected.status_code, rejected.json()) == (401, expected_body("APIG.0307", rejected))
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 200, "other tokens still work"


def test_revoke_tokens_in_python(emulator_api, task):
    victim = emulator_api.server.issue_token()
    assert emulator_api.server.revoke_tokens([victim], code="CC.00000003") == [victim]
    rejected = emulator_api.get("/v2/tasks/t1/progress", headers={"X-Auth-Token": victim})
    assert rejected.json() == {"error_code": "CC.00000003", "error_msg": EXPIRED}
    emulator_api.server.revoke_tokens()
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 401


@pytest.mark.parametrize("body", [{"code": "nope"}, {"tokens": "abc"}, {"tokens": [1]}], ids=str)
def test_revoke_tokens_rejects_bad_input(emulator, body):
    response = requests.post(f"{emulator.base_url}/_emulator/revoke-tokens", json=body, timeout=10)
    assert response.status_code == 400


def test_reset_forgets_revocations(emulator_api, task):
    emulator_api.server.revoke_tokens()
    emulator_api.server.reset()
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    token = emulator_api.server.issue_token()
    assert emulator_api.get("/v2/tasks/t1/progress", headers={"X-Auth-Token": token}).status_code == 200


# --- AK/SK signature failures and the lock-out ----------------------------------------------------------------


def bad_signature(server, path="/v2/tasks/t1/progress"):
    url, headers = signed_request(server.base_url, "GET", path, sk="wrong-secret")
    return requests.get(url, headers=headers, timeout=10)


def good_signature(server, path="/v2/tasks/t1/progress"):
    url, headers = signed_request(server.base_url, "GET", path)
    return requests.get(url, headers=headers, timeout=10)


def test_bad_signature_message(emulator_api, task):
    response = bad_signature(emulator_api.server)
    assert response.status_code == 401
    assert response.json() == {
        "error_code": "APIGW.0301",
        "error_msg": SIGNATURE_FAIL,
        "request_id": response.headers["X-Request-Id"],
    }
    assert emulator_api.server.stats()["aksk_failures"] == {defaults.ACCESS_KEY: 1}


def test_five_failures_in_a_row_lock_the_ak_for_300_s(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    for _ in range(5):
        assert bad_signature(emulator_api.server).json()["error_msg"] == SIGNATURE_FAIL
    assert emulator_api.server.stats()["aksk_locked"] == [defaults.ACCESS_KEY]
    locked = good_signature(emulator_api.server)
    assert locked.status_code == 401
    assert locked.json() == {
        "error_code": "APIGW.0301",
        "error_msg": AK_LOCKED,
        "request_id": locked.headers["X-Request-Id"],
    }
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 200, (
        "tokens are not affected by an AK lock"
    )
    clock.advance(299.9)
    assert good_signature(emulator_api.server).json()["error_msg"] == AK_LOCKED
    clock.advance(0.1)
    assert good_signature(emulator_api.server).status_code == 200
    stats = emulator_api.server.stats()
    assert stats["aksk_locked"] == []
    assert stats["aksk_failures"] == {defaults.ACCESS_KEY: 7}, "5 bad signatures and 2 requests while locked"
    assert stats["requests"] == {"progress 401": 7, "progress 200": 2}


def test_a_success_restarts_the_count(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    for _ in range(4):
        bad_signature(emulator_api.server)
    assert good_signature(emulator_api.server).status_code == 200
    for _ in range(4):
        bad_signature(emulator_api.server)
    assert good_signature(emulator_api.server).status_code == 200
    assert emulator_api.server.stats()["aksk_locked"] == []


def test_the_lock_is_per_ak(manual_clock_api):
    emulator_api, _ = manual_clock_api
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    for _ in range(5):
        url, headers = signed_request(
            emulator_api.base_url, "GET", "/v2/tasks/t1/progress", ak="OTHERAK", sk="x"
        )
        requests.get(url, headers=headers, timeout=10)
    assert emulator_api.server.stats()["aksk_locked"] == ["OTHERAK"]
    assert good_signature(emulator_api.server).status_code == 200


def test_reset_unlocks(manual_clock_api):
    emulator_api, _ = manual_clock_api
    for _ in range(5):
        bad_signature(emulator_api.server)
    emulator_api.server.reset()
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    assert good_signature(emulator_api.server).status_code == 200
