"""Our SDK-HMAC-SHA256 signer must produce exactly the Authorization header huaweicloudsdkcore produces."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from airflow_provider_codecheck.core import signing
from airflow_provider_codecheck.core.http import ApiCall, build_request
from airflow_provider_codecheck.core.settings import AkSkAuth, ConnectionSettings

AK = "SIGNTESTAK0000000000"
SK = "sign-test-secret-key-00000000000000000000"
MOMENT = datetime(2026, 11, 28, 19, 31, 17, tzinfo=UTC)

CASES = [
    ("GET", "/v2/tasks/t1/progress", (), None, None, None),
    ("GET", "/v2/tasks/t1/progress", (("job_id", "j-9"),), None, "iam-project-1", None),
    ("GET", "/v2/p/tasks", (("offset", "0"), ("limit", "100"), ("a b", "x/y~z")), None, None, "sts-token"),
    ("POST", "/v2/tasks/abc%2Fdef/run", (), {"git_branch": "main", "note": "ünïcode"}, "proj", None),
    ("POST", "/v2/tasks/t1/stop", (), None, None, None),
    ("PUT", "/v2/tasks/t1/defect-status", (), {"defect_id": "1,2", "defect_status": "2"}, None, None),
    ("DELETE", "/v2/tasks/t-1_2.3", (), None, "proj", "sts"),
    ("GET", "/v2/rules", (("rule_languages", "python"), ("rule_languages", "java")), None, None, None),
]


def sdk_authorization(method, path, query, body, host, headers):
    request = SdkRequest(
        method=method,
        schema="http",
        host=host,
        resource_path=path,
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )
    Signer(BasicCredentials(AK, SK)).sign(request)
    return request.header_params["Authorization"], request.uri


@pytest.mark.parametrize(("method", "path", "query", "body", "project_id", "security_token"), CASES)
def test_authorization_matches_huaweicloudsdkcore(method, path, query, body, project_id, security_token):
    settings = ConnectionSettings(
        endpoint="http://127.0.0.1:18765",
        iam_endpoint="http://127.0.0.1:18765",
        auth=AkSkAuth(AK, SK, security_token=security_token, project_id=project_id),
    )
    ours = build_request(ApiCall(method, path, query, body), settings.endpoint, settings, None, MOMENT)
    # Give the SDK the same headers we send (minus Authorization) and the same date, and let it sign.
    unsigned = {k: v for k, v in ours.headers.items() if k != "Authorization"}
    theirs, uri = sdk_authorization(method, path, query, ours.body, "127.0.0.1:18765", unsigned)
    assert ours.headers["Authorization"] == theirs
    assert ours.url == settings.endpoint + uri  # the sent query is the canonical (sorted) one


def test_signature_changes_with_every_signed_part():
    headers = {"Host": "h:1", signing.DATE_HEADER: signing.format_sdk_date(MOMENT), "Content-Type": "a/b"}
    base = signing.authorization_header(AK, SK, "GET", "/v2/x", (), headers, b"")
    assert base != signing.authorization_header(AK, SK, "POST", "/v2/x", (), headers, b"")
    assert base != signing.authorization_header(AK, SK, "GET", "/v2/y", (), headers, b"")
    assert base != signing.authorization_header(AK, SK, "GET", "/v2/x", (("a", "1"),), headers, b"")
    assert base != signing.authorization_header(AK, SK + "x", "GET", "/v2/x", (), headers, b"")
    assert base != signing.authorization_header(AK, SK, "GET", "/v2/x", (), headers, b"{}")
    assert base != signing.authorization_header(AK, SK, "GET", "/v2/x", (), {**headers, "Host": "h:2"}, b"")


def test_canonical_uri_adds_trailing_slash_and_reencodes():
    assert signing.canonical_uri("/v2/tasks/t1/progress") == "/v2/tasks/t1/progress/"
    assert signing.canonical_uri("/v2/tasks/a%2Fb/") == "/v2/tasks/a/b/"  # decoded, then split like the SDK


def test_parse_authorization_round_trip_and_errors():
    headers = {"Host": "h", signing.DATE_HEADER: "20261128T193117Z"}
    value = signing.authorization_header(AK, SK, "GET", "/", (), headers, b"")
    access, names, sig = signing.parse_authorization(value)
    assert access == AK
    assert names == ["host", "x-sdk-date"]
    assert len(sig) == 64
    with pytest.raises(ValueError, match="not SDK-HMAC-SHA256"):
        signing.parse_authorization("Bearer abc")
    with pytest.raises(ValueError, match="lacks Signature"):
        signing.parse_authorization("SDK-HMAC-SHA256 Access=a, SignedHeaders=host")


def test_signing_requires_date_header():
    with pytest.raises(ValueError, match="X-Sdk-Date"):
        signing.authorization_header(AK, SK, "GET", "/", (), {"Host": "h"}, b"")
