"""Authentication: IAM tokens, IAM password flow, AK/SK signatures (ours and huaweicloudsdkcore's)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from emulator_helpers import signed_request

from airflow_provider_codecheck.core import signing
from airflow_provider_codecheck.emulator import defaults

AUTH_EXPIRED = {"error_code": "CC.00000003", "error_msg": "Authentication information expired."}


def iam_body(user=defaults.IAM_USER, password=defaults.IAM_PASSWORD, domain=defaults.IAM_DOMAIN, scope=None):
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "password": password, "domain": {"name": domain}}},
            },
            "scope": scope if scope is not None else {"project": {"name": "cn-north-4"}},
        }
    }


# --- tokens -------------------------------------------------------------------------------------------------


def test_issued_token_is_accepted(emulator_api):
    emulator_api.server.add_task(task_id="t1")
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 200


@pytest.mark.parametrize("token", ["MIIbogus", ""])
def test_unknown_token_is_rejected(emulator_api, token):
    emulator_api.server.add_task(task_id="t1")
    response = emulator_api.get("/v2/tasks/t1/progress", headers={"X-Auth-Token": token})
    assert response.status_code == 401
    assert response.json() == AUTH_EXPIRED
    assert emulator_api.server.stats()["auth_failures"] == 1


def test_token_expires_after_its_lifetime(manual_clock_api):
    emulator_api, clock = manual_clock_api
    emulator_api.server.add_task(task_id="t1")
    short = emulator_api.server.issue_token(lifetime_s=1)
    assert emulator_api.get("/v2/tasks/t1/progress", headers={"X-Auth-Token": short}).status_code == 200
    clock.advance(1)
    response = emulator_api.get("/v2/tasks/t1/progress", headers={"X-Auth-Token": short})
    assert (response.status_code, response.json()) == (401, AUTH_EXPIRED)


def test_expire_tokens_kills_every_token(emulator_api):
    emulator_api.server.add_task(task_id="t1")
    emulator_api.server.expire_tokens()
    assert emulator_api.get("/v2/tasks/t1/progress").status_code == 401
    fresh = emulator_api.server.issue_token()
    assert emulator_api.get("/v2/tasks/t1/progress", headers={"X-Auth-Token": fresh}).status_code == 200


def test_no_credentials_is_apig_401(emulator_api):
    emulator_api.server.add_task(task_id="t1")
    response = requests.get(f"{emulator_api.base_url}/v2/tasks/t1/progress", timeout=10)
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == "APIGW.0301"
    assert body["request_id"] == response.headers["X-Request-Id"]


# --- IAM ----------------------------------------------------------------------------------------------------


def test_iam_password_token_works_for_codearts(emulator_api):
    emulator_api.server.add_task(task_id="t1")
    response = requests.post(f"{emulator_api.base_url}/v3/auth/tokens", json=iam_body(), timeout=10)
    assert response.status_code == 201
    token = response.headers["X-Subject-Token"]
    assert token.startswith("MII")
    body = response.json()["token"]
    assert body["methods"] == ["password"]
    assert body["project"]["name"] == "cn-north-4"
    assert body["user"]["name"] == defaults.IAM_USER
    assert body["catalog"] == []
    issued = datetime.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    expires = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert expires - issued == timedelta(days=1)
    assert (
        requests.get(
            f"{emulator_api.base_url}/v2/tasks/t1/progress", headers={"X-Auth-Token": token}, timeout=10
        ).status_code
        == 200
    )
    assert emulator_api.server.stats()["iam_tokens_issued"] == 1
    assert emulator_api.server.stats()["requests"]["iam 201"] == 1


def test_iam_domain_scope_and_nocatalog(emulator_api):
    response = requests.post(
        f"{emulator_api.base_url}/v3/auth/tokens?nocatalog=true",
        json=iam_body(scope={"domain": {"name": defaults.IAM_DOMAIN}}),
        timeout=10,
    )
    body = response.json()["token"]
    assert body["domain"]["name"] == defaults.IAM_DOMAIN
    assert "catalog" not in body
    assert "project" not in body


@pytest.mark.parametrize(
    "overrides", [{"user": "someone"}, {"password": "wrong"}, {"domain": "other-domain"}], ids=str
)
def test_iam_wrong_credentials(emulator_api, overrides):
    response = requests.post(
        f"{emulator_api.base_url}/v3/auth/tokens", json=iam_body(**overrides), timeout=10
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}
    }
    assert "X-Subject-Token" not in response.headers
    assert emulator_api.server.stats()["auth_failures"] == 1


def test_iam_malformed_body_is_400(emulator_api):
    response = requests.post(f"{emulator_api.base_url}/v3/auth/tokens", data=b"{not json", timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400


def test_iam_token_lifetime_is_configurable():
    from airflow_provider_codecheck.emulator.server import EmulatorServer

    with EmulatorServer(token_lifetime_s=60) as server:
        body = requests.post(f"{server.base_url}/v3/auth/tokens", json=iam_body(), timeout=10).json()["token"]
    issued = datetime.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ") - issued == timedelta(seconds=60)


# --- AK/SK --------------------------------------------------------------------------------------------------


def test_aksk_get_with_query_is_accepted(emulator):
    emulator.add_task(task_id="t1")
    url, headers = signed_request(
        emulator.base_url, "GET", "/v2/tasks/t1/progress", query=[("job_id", "a b/c")]
    )
    response = requests.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def test_aksk_post_with_body_is_accepted(emulator):
    emulator.add_task(task_id="t1")
    body = json.dumps({"git_branch": "feature/x"}).encode()
    url, headers = signed_request(emulator.base_url, "POST", "/v2/tasks/t1/run", body=body)
    response = requests.post(url, headers=headers, data=body, timeout=10)
    assert "exec_id" in response.json(), response.text


def test_aksk_tampered_body_is_rejected(emulator):
    emulator.add_task(task_id="t1")
    url, headers = signed_request(emulator.base_url, "POST", "/v2/tasks/t1/run", body=b'{"git_branch": "a"}')
    response = requests.post(url, headers=headers, data=b'{"git_branch": "b"}', timeout=10)
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0301"
    assert "signature" in response.json()["error_msg"]
    assert emulator.stats()["runs"] == {}


def test_aksk_wrong_secret_is_rejected(emulator):
    emulator.add_task(task_id="t1")
    url, headers = signed_request(emulator.base_url, "GET", "/v2/tasks/t1/progress", sk="not-the-secret")
    assert requests.get(url, headers=headers, timeout=10).json()["error_code"] == "APIGW.0301"


def test_aksk_unknown_access_key_is_rejected(emulator):
    emulator.add_task(task_id="t1")
    url, headers = signed_request(emulator.base_url, "GET", "/v2/tasks/t1/progress", ak="UNKNOWNAK")
    response = requests.get(url, headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0301"
    # Huawei's wording (APIG FAQ, reference gateway-and-quotas.md), not the emulator's former "access key not found".
    assert response.json()["error_msg"].endswith("Get secretKey failed,ak:***,err:ak not exist")


@pytest.mark.parametrize("skew", [timedelta(minutes=16), timedelta(minutes=-16)])
def test_aksk_date_skew_is_rejected(emulator, skew):
    emulator.add_task(task_id="t1")
    when = datetime.now(UTC) + skew
    url, headers = signed_request(emulator.base_url, "GET", "/v2/tasks/t1/progress", when=when)
    response = requests.get(url, headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0303"


def test_aksk_small_skew_is_accepted(emulator):
    emulator.add_task(task_id="t1")
    when = datetime.now(UTC) - timedelta(minutes=14)
    url, headers = signed_request(emulator.base_url, "GET", "/v2/tasks/t1/progress", when=when)
    assert requests.get(url, headers=headers, timeout=10).status_code == 200


def test_aksk_unsigned_date_is_rejected(emulator):
    emulator.add_task(task_id="t1")
    path = "/v2/tasks/t1/progress"
    headers = {"Host": urlsplit(emulator.base_url).netloc, "Content-Type": "application/json"}
    headers["Authorization"] = signing.authorization_header(
        defaults.ACCESS_KEY,
        defaults.SECRET_KEY,
        "GET",
        path,
        [],
        {**headers, signing.DATE_HEADER: signing.format_sdk_date(datetime.now(UTC))},
        b"",
    ).replace(";x-sdk-date", "")
    headers[signing.DATE_HEADER] = signing.format_sdk_date(datetime.now(UTC))
    response = requests.get(emulator.base_url + path, headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0303"


def test_aksk_security_token_is_enforced():
    from airflow_provider_codecheck.emulator.server import EmulatorServer

    keys = {"TEMPAK": defaults.AccessKey("temp-sk", security_token="sts-token")}
    with EmulatorServer(access_keys=keys) as server:
        server.add_task(task_id="t1")
        path = "/v2/tasks/t1/progress"
        for token, expected in [("sts-token", 200), ("other", 401), (None, 401)]:
            extra = {"X-Security-Token": token} if token else {}
            url, headers = signed_request(
                server.base_url, "GET", path, ak="TEMPAK", sk="temp-sk", extra=extra
            )
            assert requests.get(url, headers=headers, timeout=10).status_code == expected, token


# --- huaweicloudsdkcore's own signer --------------------------------------------------------------------------


@pytest.fixture
def sdk_signed(emulator):
    """Sign a request with huaweicloudsdkcore's Signer, exactly as the SDK client would."""
    pytest.importorskip("huaweicloudsdkcore")
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    emulator.add_task(task_id="t1")
    emulator.add_task(task_id="t2")
    netloc = urlsplit(emulator.base_url).netloc

    def sign(method, path, query=None, body=b""):
        credentials = BasicCredentials(defaults.ACCESS_KEY, defaults.SECRET_KEY, "0" * 32)
        request = SdkRequest(
            method=method,
            schema="http",
            host=netloc,
            resource_path=path,
            query_params=list(query or []),
            header_params={
                "Content-Type": "application/json",
                "User-Agent": "huaweicloud-usdk-python/3.0",
                "X-Project-Id": credentials.project_id,
            },
            body=body,
        )
        Signer(credentials).sign(request)
        return f"{emulator.base_url}{request.uri}", dict(request.header_params), request.body

    return sign


def test_sdk_signed_get_is_accepted(sdk_signed):
    url, headers, _ = sdk_signed("GET", "/v2/tasks/t1/progress", query=[("job_id", "j-1"), ("a", "x y")])
    response = requests.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    # Authenticated and served: j-1 is no execution record of t1, so the documented lookup error comes back.
    assert response.json()["error_code"] == "CC.00050002"


def test_sdk_signed_post_is_accepted(sdk_signed):
    url, headers, body = sdk_signed("POST", "/v2/tasks/t1/run", body=b'{"git_branch": "dev"}')
    response = requests.post(url, headers=headers, data=body, timeout=10)
    assert "exec_id" in response.json(), response.text


def test_sdk_signed_tampered_header_is_rejected(sdk_signed):
    url, headers, _ = sdk_signed("GET", "/v2/tasks/t1/progress")
    headers["X-Project-Id"] = "1" * 32
    assert requests.get(url, headers=headers, timeout=10).status_code == 401


def test_sdk_signed_tampered_path_is_rejected(sdk_signed):
    url, headers, _ = sdk_signed("GET", "/v2/tasks/t1/progress")
    response = requests.get(url.replace("/t1/", "/t2/"), headers=headers, timeout=10)
    assert (response.status_code, response.json()["error_code"]) == (401, "APIGW.0301")


def test_sdk_signed_tampered_query_is_rejected(sdk_signed):
    url, headers, _ = sdk_signed("GET", "/v2/tasks/t1/progress", query=[("job_id", "j-1")])
    response = requests.get(url.replace("j-1", "j-2"), headers=headers, timeout=10)
    assert response.status_code == 401


def test_sdk_signed_tampered_body_is_rejected(sdk_signed):
    url, headers, _ = sdk_signed("POST", "/v2/tasks/t1/run", body=b'{"git_branch": "dev"}')
    response = requests.post(url, headers=headers, data=b'{"git_branch": "main"}', timeout=10)
    assert response.status_code == 401
