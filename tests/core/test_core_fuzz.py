"""Property: whatever the service sends, reading it raises only CodeCheckError subclasses.

300 examples per property by default; ``HYPOTHESIS_PROFILE=full`` runs 10,000.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_codecheck.core import iam
from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.errors import CodeCheckError
from airflow_provider_codecheck.core.http import HttpResponse
from airflow_provider_codecheck.core.responses import decode
from airflow_provider_codecheck.core.settings import PasswordAuth

_COMMON = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("codecheck-client", max_examples=300, **_COMMON)
settings.register_profile("codecheck-client-full", max_examples=10_000, **_COMMON)
PROFILE = settings.get_profile(
    "codecheck-client-full" if os.environ.get("HYPOTHESIS_PROFILE") == "full" else "codecheck-client"
)

PARSERS = [
    ops.parse_progress,
    ops.parse_run,
    ops.parse_defects_summary,
    ops.parse_defects_statistic,
    ops.get_task_progress("t").parse,
    ops.stop_task("t").parse,
]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=6,
)
codes = (
    st.none()
    | st.sampled_from(["CC.00000003", "CC.00050015", "CC.00050010", "APIGW.0301", "APIGW.0308", "0", ""])
    | scalars
)
ratios = st.none() | st.sampled_from(["50%", "100%", "101%", "", "abc", " 7 % "]) | scalars
statuses = st.none() | st.sampled_from([0, 1, 2, 3, 7, -1, 2.0, True, "2"]) | json_values
# Edge values a JSON parser can produce: Infinity, NaN, integers beyond float range.
edges = st.sampled_from(
    [float("inf"), float("-inf"), float("nan"), 10**400, -(10**400), "3", "1e400", "-2", True]
)
counts = edges | st.none() | st.integers() | st.floats() | st.text(max_size=8)
service_dicts = st.fixed_dictionaries(
    {},
    optional={
        "error_code": codes,
        "error_msg": json_values,
        "errorCode": codes,
        "code": codes,
        "message": json_values,
        "task_status": statuses,
        "progress": st.none()
        | json_values
        | st.fixed_dictionaries({}, optional={"ratio": ratios, "info": json_values}),
        "exec_id": json_values,
        "critical_count": counts,
        "major_count": counts,
        "issue_count": counts,
        "code_quality": counts,
        "last_exec_time": json_values,
        "severity": json_values | st.dictionaries(st.sampled_from(["critical", "major", "minor"]), counts),
        "status": json_values | st.dictionaries(st.sampled_from(["unresolved", "resolved"]), counts),
        "nested": json_values,
        "token": json_values
        | st.fixed_dictionaries(
            {},
            optional={"expires_at": json_values | st.just("2026-11-29T12:00:00Z"), "issued_at": json_values},
        ),
    },
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


bodies = st.one_of(
    service_dicts.map(_encode),  # first: shrinking prefers the most interesting branch
    st.binary(max_size=200),
    json_values.map(_encode),
    st.sampled_from(
        [b"", b"  ", b"<html>502 Bad Gateway</html>", b'{"task_status": 0, "progress": {"ratio": "4']
    ),
)
header_names = st.sampled_from(["x-request-id", "retry-after", "content-type", "x-subject-token"]) | st.text(
    max_size=10
)
headers = st.dictionaries(header_names, st.text(max_size=30), max_size=4)
# Half the replies are 2xx (only those reach the parsers); the rest cover every status.
http_statuses = st.sampled_from([200, 201, 204]) | st.integers(100, 599)
responses = st.builds(HttpResponse, http_statuses, headers, bodies | service_dicts.map(_encode))


@PROFILE
@given(responses)
def test_decode_and_parsers_raise_only_codecheck_errors(response: HttpResponse) -> None:
    try:
        body = decode(response)
    except CodeCheckError:
        return
    for parse in PARSERS:
        with contextlib.suppress(CodeCheckError):
            parse(body)


@PROFILE
@given(json_values | service_dicts)
def test_parsers_on_any_decoded_json(body: Any) -> None:
    for parse in PARSERS:
        with contextlib.suppress(CodeCheckError):
            parse(body)


@PROFILE
@given(responses)
def test_iam_token_reply_raises_only_codecheck_errors(response: HttpResponse) -> None:
    with contextlib.suppress(CodeCheckError):
        iam.parse_token_response(response, PasswordAuth("d", "u", "pw", None))
