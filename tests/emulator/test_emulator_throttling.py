"""429 from the gateway: the throttle_429 fault's options and the admin-set token-bucket quota."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest
import requests
from emulator_helpers import Api

from airflow_provider_codecheck.emulator.server import EmulatorServer
from airflow_provider_codecheck.emulator.state import ManualClock

# A fixed wall clock a quarter second past a whole second: HTTP-dates must round up.
WALL = datetime(2026, 12, 1, 5, 0, 0, 250000, tzinfo=UTC)


def throttle_message(limit: str) -> str:
    return (
        f"The throttling threshold has been reached: policy user over ratelimit,limit:{limit},time:1 second"
    )


@pytest.fixture(scope="module")
def fixed_server() -> Iterator[tuple[EmulatorServer, ManualClock]]:
    clock = ManualClock()
    with EmulatorServer(clock=clock, wall_clock=lambda: WALL) as server:
        yield server, clock


@pytest.fixture
def fixed(fixed_server) -> Iterator[tuple[Api, ManualClock]]:
    """Manual monotonic clock and a frozen wall clock (tokens only: AK/SK dates would be off)."""
    server, clock = fixed_server
    server.reset()
    server.add_task(task_id="t1", initial_status=2)
    client = Api(server, server.issue_token())
    yield client, clock
    client.close()


# --- throttle_429 fault ---------------------------------------------------------------------------------------


def test_throttle_fault_apig_spelling(fixed):
    emulator_api, _ = fixed
    emulator_api.server.set_faults([{"kind": "throttle_429", "count": 1, "code": "APIG.0308"}])
    response = emulator_api.get("/v2/tasks/t1/progress")
    assert response.status_code == 429
    assert response.json()["error_code"] == "APIG.0308"
    assert response.json()["error_msg"] == throttle_message("10")
    assert response.headers["Retry-After"] == "1"


def test_throttle_fault_without_retry_after(fixed):
    emulator_api, _ = fixed
    emulator_api.server.set_faults([{"kind": "throttle_429", "count": 1, "retry_after": None}])
    response = emulator_api.get("/v2/tasks/t1/progress")
    assert response.status_code == 429
    assert "Retry-After" not in response.headers


def test_throttle_fault_retry_after_as_http_date(fixed):
    emulator_api, _ = fixed
    emulator_api.server.set_faults(
        [{"kind": "throttle_429", "count": 1, "retry_after": 3, "retry_after_form": "date"}]
    )
    response = emulator_api.get("/v2/tasks/t1/progress")
    # 05:00:00.25 + 3 s = 05:00:03.25, rounded up to a whole second (RFC 7231 IMF-fixdate).
    assert response.headers["Retry-After"] == "Tue, 01 Dec 2026 05:00:04 GMT"
    assert parsedate_to_datetime(response.headers["Retry-After"]) == WALL.replace(second=4, microsecond=0)


def test_throttle_fault_fractional_retry_after_is_sent_as_given(fixed):
    # Not RFC 7231 delta-seconds (an integer), kept for fast tests and as a leniency check for clients.
    emulator_api, _ = fixed
    emulator_api.server.set_faults([{"kind": "throttle_429", "count": 1, "retry_after": 0.3}])
    assert emulator_api.get("/v2/tasks/t1/progress").headers["Retry-After"] == "0.3"
    emulator_api.server.set_faults(
        [{"kind": "throttle_429", "count": 1, "retry_after": 0.3, "retry_after_form": "date"}]
    )
    assert emulator_api.get("/v2/tasks/t1/progress").headers["Retry-After"] == "Tue, 01 Dec 2026 05:00:01 GMT"


@pytest.mark.parametrize(
    "options",
    [{"code": "APIG.0309"}, {"retry_after_form": "minutes"}, {"retry_after": -1}, {"retry_after": "soon"}],
    ids=str,
)
def test_throttle_fault_options_are_validated(emulator, options):
    spec = {"kind": "throttle_429", "count": 1, **options}
    response = requests.post(f"{emulator.base_url}/_emulator/faults", json={"faults": [spec]}, timeout=10)
    assert response.status_code == 400


# --- quota -----------------------------------------------------------------------------------------------------


def test_quota_is_off_by_default(fixed):
    emulator_api, _ = fixed
    assert all(emulator_api.get("/v2/tasks/t1/progress").ok for _ in range(50))
    assert emulator_api.server.stats()["throttled"] == {}


def test_quota_token_bucket_per_api(fixed):
    emulator_api, clock = fixed
    assert emulator_api.server.set_quota(rate=2, burst=2) == {
        "rate": 2.0,
        "burst": 2,
        "scope": "api",
        "retry_after_form": "seconds",
    }
    codes = [emulator_api.get("/v2/tasks/t1/progress").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = emulator_api.get("/v2/tasks/t1/progress")
    assert refused.json() == {
        "error_code": "APIGW.0308",
        "error_msg": throttle_message("2"),
        "request_id": refused.headers["X-Request-Id"],
    }
    assert refused.headers["Retry-After"] == "1", "0.5 s until the next token, rounded up"
    assert emulator_api.get("/v2/tasks/t1/defects-summary").status_code == 200, (
        "another API has its own bucket"
    )
    clock.advance(0.5)
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 200
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 429
    clock.advance(10)  # the bucket refills up to burst only
    codes = [emulator_api.get("/v2/tasks/t1/progress").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    stats = emulator_api.server.stats()
    assert stats["throttled"] == {"progress": 4}
    assert stats["requests"]["progress 429"] == 4


def test_quota_scope_all_shares_one_bucket(fixed):
    emulator_api, _ = fixed
    emulator_api.server.set_quota(rate=1, burst=2, scope="all")
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 200
    assert emulator_api.get("/v2/tasks/t1/defects-summary").status_code == 200
    assert emulator_api.run("t1").status_code == 429
    assert emulator_api.server.stats()["runs"] == {}, "a throttled run never reaches the task"


def test_quota_retry_after_long_wait(fixed):
    emulator_api, _ = fixed
    emulator_api.server.set_quota(rate=0.25, burst=1)
    assert emulator_api.get("/v2/tasks/t1/progress").ok
    refused = emulator_api.get("/v2/tasks/t1/progress")
    assert refused.headers["Retry-After"] == "4"
    assert refused.json()["error_msg"] == throttle_message("0.25")


def test_quota_retry_after_as_date_or_absent(fixed):
    emulator_api, _ = fixed
    emulator_api.server.set_quota(rate=0.5, burst=1, retry_after_form="date")
    emulator_api.get("/v2/tasks/t1/progress")
    assert emulator_api.get("/v2/tasks/t1/progress").headers["Retry-After"] == "Tue, 01 Dec 2026 05:00:03 GMT"
    emulator_api.server.set_quota(rate=0.5, burst=1, retry_after_form=None)
    emulator_api.get("/v2/tasks/t1/progress")
    refused = emulator_api.get("/v2/tasks/t1/progress")
    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers


def test_quota_comes_after_authentication_and_before_faults(fixed):
    emulator_api, _ = fixed
    emulator_api.server.set_quota(rate=1, burst=1)
    emulator_api.server.set_faults([{"kind": "busy_400", "count": 1}])
    assert requests.get(f"{emulator_api.base_url}/v2/tasks/t1/progress", timeout=10).status_code == 401
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 400, (
        "the first token went to the faulted call"
    )
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 429
    assert emulator_api.server.stats()["faults_injected"] == {"busy_400": 1}


def test_quota_does_not_apply_to_iam(fixed):
    emulator_api, _ = fixed
    emulator_api.server.set_quota(rate=1, burst=1, scope="all")
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {}}}}}
    codes = {
        requests.post(f"{emulator_api.base_url}/v3/auth/tokens", json=body, timeout=10).status_code
        for _ in range(3)
    }
    assert codes == {401}


def test_quota_over_http_and_reset_turns_it_off(fixed):
    emulator_api, _ = fixed
    response = requests.post(f"{emulator_api.base_url}/_emulator/quota", json={"rate": 1}, timeout=10)
    assert response.json() == {"rate": 1.0, "burst": 1, "scope": "api", "retry_after_form": "seconds"}
    assert [emulator_api.get("/v2/tasks/t1/progress").status_code for _ in range(2)] == [200, 429]
    requests.post(f"{emulator_api.base_url}/_emulator/quota", json={"rate": None}, timeout=10)
    assert emulator_api.get("/v2/tasks/t1/progress").ok
    emulator_api.server.set_quota(rate=1, burst=1)
    emulator_api.server.reset()
    emulator_api.server.add_task(task_id="t1", initial_status=2)
    client = Api(emulator_api.server, emulator_api.server.issue_token())
    assert all(client.get("/v2/tasks/t1/progress").ok for _ in range(5))
    client.close()


@pytest.mark.parametrize(
    "body",
    [
        {"rate": 0},
        {"rate": "fast"},
        {"rate": 1, "burst": 0},
        {"rate": 1, "scope": "user"},
        {"rate": 1, "x": 1},
    ],
    ids=str,
)
def test_quota_settings_are_validated(emulator, body):
    response = requests.post(f"{emulator.base_url}/_emulator/quota", json=body, timeout=10)
    assert response.status_code == 400
