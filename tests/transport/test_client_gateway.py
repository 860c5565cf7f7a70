"""Issue 11 over real sockets: what the gateway and the service really send (emulator faults of part A).

B2 every request bounded in total time and in size; B6 fields the provider does not need; B8 netrc, proxies and
the URL sent; B9 Retry-After in both forms.
"""

from __future__ import annotations

import socket
import threading
import time

import client_helpers as h
import pytest

from airflow_provider_codecheck.core import operations as ops
from airflow_provider_codecheck.core.errors import ResponseTooLargeError, ThrottledError, TransportError
from airflow_provider_codecheck.core.http import MAX_RESPONSE_BYTES
from airflow_provider_codecheck.core.models import TaskStatus
from airflow_provider_codecheck.core.retry import RetryPolicy
from airflow_provider_codecheck.core.settings import settings_from_connection
from airflow_provider_codecheck.testing import route_requests

ONCE = RetryPolicy(max_attempts=1)

# --- B2: total deadline ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("route", ["progress", "run"])
def test_a_trickling_body_times_out_as_a_whole(emulator_with_t1, transport, route):
    # 1 byte every 0.2 s: each read gets a byte well within the 1 s timeout, the whole body would take ~15 s.
    emulator_with_t1.set_faults(
        [{"kind": "trickle", "count": 1, "chunk": 1, "delay_s": 0.2, "routes": [route]}]
    )
    settings = h.aksk_settings(emulator_with_t1, timeout=1.0)
    method = "get_task_progress" if route == "progress" else "run_task"
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        h.invoke(transport, settings, method, h.TASK, policy=ONCE)
    elapsed = time.monotonic() - started
    error = caught.value
    assert "timeout" in str(error)
    assert error.maybe_processed is True  # the request was sent: a run may have started its scan
    stats = emulator_with_t1.stats()
    assert stats["faults_injected"] == {"trickle": 1}
    assert route_requests(stats, route) <= 1
    print(f"trickle {transport} {route}: gave up after {elapsed:.2f}s with timeout=1")


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_a_trickling_body_within_the_deadline_is_read(emulator_with_t1, transport):
    emulator_with_t1.set_faults(
        [{"kind": "trickle", "count": 1, "chunk": 64, "delay_s": 0.01, "routes": ["progress"]}]
    )
    progress = h.invoke(
        transport, h.aksk_settings(emulator_with_t1), "get_task_progress", h.TASK, policy=ONCE
    )
    assert progress.status is TaskStatus.SUCCESS
    assert emulator_with_t1.stats()["faults_injected"] == {"trickle": 1}


# --- B2: size cap ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("route", ["progress", "run"])
def test_a_body_above_the_cap_is_a_clear_error(emulator_with_t1, transport, route):
    emulator_with_t1.set_faults([{"kind": "huge_body", "count": 5, "size_mb": 12, "routes": [route]}])
    method = "get_task_progress" if route == "progress" else "run_task"
    seen = []
    with pytest.raises(ResponseTooLargeError) as caught:
        h.invoke(
            transport,
            h.aksk_settings(emulator_with_t1),
            method,
            h.TASK,
            observe=seen.append if transport == "sync" else None,
        )
    error = caught.value
    text = str(error)
    assert str(MAX_RESPONSE_BYTES) in text
    assert str(12 * 1024 * 1024) in text or "exceeded" in text  # the announced or the counted size
    assert error.request_id
    assert error.request_id in text
    assert error.status == 200
    assert error.attempts == 1  # permanent: the same request gets the same answer
    assert error.maybe_processed is True  # a 2xx: the run did start its scan
    assert route_requests(emulator_with_t1.stats(), route) == 1
    if transport == "sync":
        assert seen[-1].headers["X-Request-Id"] == error.request_id


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_a_body_below_the_cap_is_read(emulator_with_t1, transport):
    emulator_with_t1.set_faults([{"kind": "huge_body", "count": 1, "size_mb": 9, "routes": ["progress"]}])
    progress = h.invoke(transport, h.aksk_settings(emulator_with_t1), "get_task_progress", h.TASK)
    assert progress.status is TaskStatus.SUCCESS
    assert len(progress.raw["padding"]) > 8 * 1024 * 1024


@pytest.fixture
def header_trickler():
    """A raw socket server that sends its status line and headers 1 byte every 0.1 s (no emulator fault
    trickles headers; the total deadline must cover that phase too)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + b"x" * 200 + b"\r\n\r\n{}"

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                for byte in head:
                    if stop.wait(0.1):
                        break
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    server.close()


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_trickling_headers_time_out_as_a_whole(emulator_with_t1, header_trickler, transport):
    settings = settings_from_connection(
        header_trickler,
        "AK",
        "SK",
        {"auth_type": "aksk", "iam_endpoint": emulator_with_t1.base_url, "timeout": 1.0},
    )
    with pytest.raises(TransportError) as caught:
        h.invoke(transport, settings, "get_task_progress", h.TASK, policy=ONCE)
    assert "timeout" in str(caught.value)


# --- B8: what the worker's and the triggerer's HTTP stacks would add or rewrite -------------------------------

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def clean_proxy_env(monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("mode", ["aksk", "token", "password"])
def test_netrc_credentials_are_never_sent(emulator_with_t1, clean_proxy_env, tmp_path, transport, mode):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-password\n")
    netrc.chmod(0o600)
    clean_proxy_env.setenv("HOME", str(tmp_path))
    clean_proxy_env.setenv("NETRC", str(netrc))
    assert (
        h.invoke(transport, h.settings_for(mode, emulator_with_t1), "get_task_progress", h.TASK).status
        is TaskStatus.SUCCESS
    )
    stats = emulator_with_t1.stats()
    assert stats["requests"]["progress 200"] == 1
    assert "progress 401" not in stats["requests"]


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_the_connection_proxy_wins_over_environment_proxies(emulator_with_t1, clean_proxy_env, transport):
    dead = f"http://127.0.0.1:{_dead_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        clean_proxy_env.setenv(name, dead)
    settings = h.aksk_settings(
        emulator_with_t1, proxy=emulator_with_t1.base_url
    )  # the emulator serves absolute-form proxy requests
    assert h.invoke(transport, settings, "get_task_progress", h.TASK).status is TaskStatus.SUCCESS
    stats = emulator_with_t1.stats()
    assert stats["proxied_requests"] == 1
    assert stats["recent_targets"][-1].startswith("http://")


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_environment_proxies_apply_without_a_connection_proxy(emulator_with_t1, clean_proxy_env, transport):
    clean_proxy_env.setenv("HTTP_PROXY", emulator_with_t1.base_url)
    clean_proxy_env.setenv("http_proxy", emulator_with_t1.base_url)
    assert (
        h.invoke(transport, h.aksk_settings(emulator_with_t1), "get_task_progress", h.TASK).status
        is TaskStatus.SUCCESS
    )
    assert emulator_with_t1.stats()["proxied_requests"] == 1
    # ...unless NO_PROXY names the host.
    clean_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    clean_proxy_env.setenv("no_proxy", "127.0.0.1")
    assert (
        h.invoke(transport, h.aksk_settings(emulator_with_t1), "get_task_progress", h.TASK).status
        is TaskStatus.SUCCESS
    )
    assert emulator_with_t1.stats()["proxied_requests"] == 1


RESERVED_ID = "a:b@c+d=e,f;g!h'i(j)k*l$m"


@pytest.mark.parametrize("transport", h.TRANSPORTS)
def test_the_url_sent_is_exactly_the_url_signed(emulator_with_t1, clean_proxy_env, transport):
    emulator_with_t1.add_task(task_id=RESERVED_ID, initial_status=2, duration_s=30)
    progress = h.invoke(transport, h.aksk_settings(emulator_with_t1), "get_task_progress", RESERVED_ID)
    assert progress.status is TaskStatus.SUCCESS  # the gateway's signature check passed
    built = ops.get_task_progress(RESERVED_ID).call.path
    assert "%3A" in built
    assert "%40" in built
    assert emulator_with_t1.stats()["recent_targets"] == [built]


# --- B6: fields the provider does not need -----------------------------------------------------------------


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("mode", ["aksk", "password"])
def test_unknown_fields_and_nested_code_message_objects_are_not_errors(emulator_with_t1, transport, mode):
    routes = ["progress", "defects_summary", "defects_statistic", "run"]
    emulator_with_t1.set_faults([{"kind": "extra_fields", "count": 10, "routes": routes}])
    settings = h.settings_for(mode, emulator_with_t1)
    assert h.invoke(transport, settings, "get_task_progress", h.TASK).status is TaskStatus.SUCCESS
    assert h.invoke(transport, settings, "get_defects_summary", h.TASK).counts
    assert h.invoke(transport, settings, "get_defects_statistic", h.TASK).severity
    assert h.invoke(transport, settings, "run_task", h.TASK).exec_id
    stats = emulator_with_t1.stats()
    assert stats["faults_injected"] == {"extra_fields": 4}
    assert stats["runs"] == {h.TASK: 1}


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("ratio", ["N/A", "__absent__", "", "abc%", 250, None, {"v": 1}])
def test_an_odd_ratio_next_to_a_valid_status_reads_as_none(emulator_with_t1, transport, ratio):
    emulator_with_t1.set_faults([{"kind": "odd_ratio", "count": 1, "ratio": ratio, "routes": ["progress"]}])
    progress = h.invoke(transport, h.aksk_settings(emulator_with_t1), "get_task_progress", h.TASK)
    assert progress.status is TaskStatus.SUCCESS
    assert progress.ratio is None
    if ratio == "__absent__":
        assert "ratio" not in progress.raw["progress"]
    else:
        assert progress.raw["progress"]["ratio"] == ratio  # the raw value is kept
    assert emulator_with_t1.stats()["faults_injected"] == {"odd_ratio": 1}


# --- B9: Retry-After in both forms -----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("form", ["seconds", "date"])
@pytest.mark.parametrize("code", ["APIG.0308", "APIGW.0308"])
def test_throttling_is_retried_after_the_servers_wait(emulator_with_t1, transport, form, code):
    emulator_with_t1.set_faults(
        [
            {
                "kind": "throttle_429",
                "count": 1,
                "code": code,
                "retry_after": 1,
                "retry_after_form": form,
                "routes": ["progress"],
            }
        ]
    )
    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001, max_elapsed=10)
    progress = h.invoke(
        transport, h.aksk_settings(emulator_with_t1), "get_task_progress", h.TASK, policy=policy
    )
    assert progress.status is TaskStatus.SUCCESS
    assert emulator_with_t1.stats()["requests"] == {"progress 429": 1, "progress 200": 1}


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("form", ["seconds", "date"])
@pytest.mark.parametrize("code", ["APIG.0308", "APIGW.0308"])
def test_a_retry_after_beyond_the_budget_gives_up_at_once_carrying_it(
    emulator_with_t1, transport, form, code
):
    fault = {"kind": "throttle_429", "count": 5, "code": code, "retry_after": 30, "retry_after_form": form}
    emulator_with_t1.set_faults([fault])
    policy = RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.001, max_elapsed=5)
    with pytest.raises(ThrottledError) as caught:
        h.invoke(transport, h.aksk_settings(emulator_with_t1), "get_task_progress", h.TASK, policy=policy)
    error = caught.value
    assert error.error_code == code
    assert error.status == 429
    assert error.attempts == 1
    # An HTTP-date has whole seconds (rounded up by the server) and is measured from our clock.
    assert error.retry_after == 30 if form == "seconds" else 28 <= error.retry_after <= 31
    assert emulator_with_t1.stats()["requests"] == {"progress 429": 1}


@pytest.mark.parametrize("transport", h.TRANSPORTS)
@pytest.mark.parametrize("null_fields", ["null", "absent"])
def test_a_never_checked_task_reads_the_same_with_null_or_absent_fields(
    emulator_with_t1, transport, null_fields
):
    # The emulator's shape switch: null fields sent as null, or dropped (never run → {"progress": {}}).
    emulator_with_t1.set_shape(null_fields=null_fields)
    emulator_with_t1.add_task(task_id="never-run")
    settings = h.aksk_settings(emulator_with_t1)
    progress = h.invoke(transport, settings, "get_task_progress", "never-run")
    assert progress.status is TaskStatus.NOT_STARTED
    assert (progress.ratio, progress.info) == (None, None)
    assert ("task_status" in progress.raw) is (null_fields == "null")
    summary = h.invoke(transport, settings, "get_defects_summary", "never-run")
    assert summary.last_exec_time is None  # never run; the rest parses whatever the shape
