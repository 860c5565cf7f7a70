"""The request budget (core/budget.py), on a fake clock: learning, pausing, fairness, the cap, its keys."""

from __future__ import annotations

from datetime import UTC

import pytest

from airflow_provider_codecheck.core import budget as b
from airflow_provider_codecheck.core import budgets as bs
from airflow_provider_codecheck.core.errors import ConnectionConfigError
from airflow_provider_codecheck.core.settings import settings_from_connection


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(cap: float | None = None) -> tuple[b.Budget, FakeClock, list[tuple[str, str]]]:
    clock = FakeClock()
    notes: list[tuple[str, str]] = []
    return b.Budget("test budget", cap, clock, lambda level, msg: notes.append((level, msg))), clock, notes


def send(budget: b.Budget) -> b.Ticket:
    ticket = budget.enter()
    assert budget.acquire(ticket) == 0.0
    return ticket


def drive(budget: b.Budget, clock: FakeClock, seconds: float, step: float = 0.01) -> int:
    """Callers asking as fast as granted for ``seconds``; returns how many were granted."""
    sent = 0
    end = clock.now + seconds
    ticket = budget.enter()
    while clock.now < end:
        if budget.acquire(ticket) == 0.0:
            sent += 1
            budget.observe(ticket, throttled=False)
            ticket = budget.enter()
        else:
            clock.now += step
    budget.leave(ticket)
    return sent


def test_unlimited_until_the_first_429() -> None:
    budget, _clock, notes = make()
    for _ in range(1000):
        budget.observe(send(budget), throttled=False)
    assert budget.rate is None
    assert not notes


def test_a_429_cuts_the_rate_to_the_measured_rate_times_beta_once_per_round() -> None:
    budget, clock, notes = make()
    in_flight = []
    for _ in range(200):  # 100 requests/s for 2 s
        in_flight.append(send(budget))
        clock.now += 0.01
    for ticket in in_flight[-20:]:  # twenty 429s of one round: one cut
        budget.observe(ticket, throttled=True)
    assert budget.rate == pytest.approx(70, rel=0.1)
    assert [level for level, _ in notes] == ["warning"]
    assert "70" in notes[0][1] or "6" in notes[0][1]


def test_rate_probes_back_up_then_above_the_last_max_and_recovery_is_logged_once() -> None:
    budget, clock, notes = make()
    for _ in range(200):
        send(budget)
        clock.now += 0.01
    budget.observe(send(budget), throttled=True)
    cut = budget.rate
    assert cut is not None
    drive(budget, clock, 3)
    assert budget.rate is not None
    assert budget.rate > cut
    drive(budget, clock, 70)
    assert budget.rate is not None
    assert budget.rate > 100
    assert [level for level, _ in notes] == ["warning", "info"]
    assert "learned rate" in notes[1][1]


def test_granted_rate_follows_the_learned_rate() -> None:
    budget, clock, _ = make()
    for _ in range(100):
        send(budget)
        clock.now += 0.01
    budget.observe(send(budget), throttled=True)
    rate = budget.rate
    assert rate is not None
    sent = drive(budget, clock, 1.0)
    # Successes probe the rate up meanwhile: the pace lies between the cut rate and the rate reached.
    assert rate * 0.95 <= sent <= (budget.rate or 0) + 2


def test_retry_after_pauses_everyone_and_the_bucket_restarts_empty() -> None:
    budget, clock, _ = make()
    ticket = send(budget)
    budget.observe(ticket, throttled=True, retry_after=3)
    waiter = budget.enter()
    wait = budget.acquire(waiter)
    assert wait >= 3
    clock.now += 2.9
    assert budget.acquire(waiter) > 0
    clock.now += 0.1 + 1 / (budget.rate or 1)
    assert budget.acquire(waiter) == 0.0


def test_waiters_are_served_in_ticket_order_not_by_who_asks_after_a_refill() -> None:
    budget, clock, _ = make(cap=1.0)
    send(budget)  # the one token of the burst
    first, second, third = budget.enter(), budget.enter(), budget.enter()
    clock.now += 1.0
    # The last comer asks first, right after the refill: the token goes to the head of the queue.
    assert budget.acquire(third) > 0
    assert budget.acquire(second) > 0
    assert budget.acquire(first) == 0.0
    clock.now += 1.0
    assert budget.acquire(third) > 0
    assert budget.acquire(second) == 0.0
    clock.now += 1.0
    assert budget.acquire(third) == 0.0


def test_a_queued_caller_naps_half_its_estimated_turn_at_most_max_nap() -> None:
    budget, _clock, _ = make(cap=10.0)
    for _ in range(10):
        send(budget)
    tickets = [budget.enter() for _ in range(200)]
    assert budget.acquire(tickets[4]) == pytest.approx(0.25)  # turn in 0.5 s: ask again in 0.25 s
    assert budget.acquire(tickets[0]) == pytest.approx(0.05)
    assert budget.acquire(tickets[199]) == b.MAX_NAP  # turn in 20 s: ask again in 5 s


def test_a_caller_that_leaves_gives_its_turn_to_the_next() -> None:
    budget, clock, _ = make(cap=1.0)
    send(budget)
    gone, waiting = budget.enter(), budget.enter()
    budget.leave(gone)
    clock.now += 1.0
    assert budget.acquire(waiting) == 0.0


def test_the_cap_bounds_the_rate_from_the_start_and_the_learned_rate_after() -> None:
    budget, clock, _ = make(cap=5.0)
    assert drive(budget, clock, 2.0) <= 5 * 2 + 5 + 1  # one second of burst
    for _ in range(50):
        budget.observe(send(budget), throttled=False)
        clock.now += 1
    assert budget.rate == 5.0
    budget.set_cap(None)
    assert budget.rate is None


def test_budget_keys_name_no_secret() -> None:
    extra = {"auth_type": "aksk", "region": "cn-north-4"}
    aksk = settings_from_connection(None, "MYAK", "very-secret-sk", extra)
    assert bs.budget_key(aksk) == ("https://codearts-check.cn-north-4.myhuaweicloud.com", "ak MYAK")
    token = settings_from_connection(None, None, "secret-token-value", {**extra, "auth_type": "token"})
    key = bs.budget_key(token)
    assert "secret-token-value" not in repr(key)
    pwd = settings_from_connection(
        None, "user", "pw-secret", {**extra, "auth_type": "password", "domain_name": "dom"}
    )
    assert bs.budget_key(pwd)[1] == "user dom/user"
    assert "pw-secret" not in repr(bs.BUDGETS.get(bs.budget_key(pwd)))


@pytest.mark.parametrize("bad", ["fast", "0", -1, "nan", "inf", True, "1e9"])
def test_max_requests_per_second_rejects_bad_values(bad: object) -> None:
    extra = {"auth_type": "token", "region": "cn-north-4", "max_requests_per_second": bad}
    with pytest.raises(ConnectionConfigError, match="max_requests_per_second"):
        settings_from_connection(None, None, "t", extra)


@pytest.mark.parametrize(("raw", "value"), [("12.5", 12.5), (3, 3.0), ("", None), (None, None)])
def test_max_requests_per_second_accepts(raw: object, value: float | None) -> None:
    extra = {"auth_type": "token", "region": "cn-north-4", "max_requests_per_second": raw}
    assert settings_from_connection(None, None, "t", extra).max_requests_per_second == value


def test_registry_shares_one_budget_per_key_and_follows_the_cap() -> None:
    budgets = bs.Budgets()
    one = budgets.get(("e", "ak A"))
    assert budgets.get(("e", "ak A")) is one
    assert budgets.get(("e", "ak B")) is not one
    assert budgets.get(("e", "ak A"), cap=7.0).rate == 7.0


# --- through the call flow: the budget's waits are Sleep effects, the same for both transports -------------


def _flow_setup() -> tuple[b.Budgets, FakeClock, object]:
    from datetime import datetime

    from airflow_provider_codecheck.core import flow

    clock = FakeClock()
    budgets = bs.Budgets(clock)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ctx = flow.Context(monotonic=clock, now=lambda: now, rand=lambda: 0.0, budgets=budgets)
    return budgets, clock, ctx


def test_a_429_with_retry_after_makes_the_next_call_of_another_flow_wait() -> None:
    from airflow_provider_codecheck.core import flow
    from airflow_provider_codecheck.core import operations as ops
    from airflow_provider_codecheck.core.http import HttpResponse
    from airflow_provider_codecheck.core.retry import RetryPolicy

    budgets, clock, ctx = _flow_setup()
    settings = settings_from_connection("http://h", "AK", "SK", {"auth_type": "aksk"})
    policy = RetryPolicy(max_attempts=1)
    first = flow.perform(ops.get_task_progress("t1"), settings, policy, ctx)  # type: ignore[arg-type]
    assert isinstance(first.send(None), flow.Send)  # unthrottled: sent at once
    throttled = HttpResponse(429, {"retry-after": "2"}, b'{"error_code": "APIGW.0308", "error_msg": "x"}')
    with pytest.raises(Exception, match="429"):
        first.send(throttled)
    budget = budgets.get(bs.budget_key(settings))
    assert budget.throttled
    second = flow.perform(ops.get_task_progress("t2"), settings, policy, ctx)  # type: ignore[arg-type]
    effect = second.send(None)
    assert isinstance(effect, flow.Sleep)
    assert effect.seconds >= 2.0
    clock.now += effect.seconds
    while isinstance(effect, flow.Sleep):
        clock.now += effect.seconds
        effect = second.send(None)
    assert isinstance(effect, flow.Send)
    second.close()


def test_a_flow_closed_while_waiting_gives_its_turn_away() -> None:
    from airflow_provider_codecheck.core import flow
    from airflow_provider_codecheck.core import operations as ops
    from airflow_provider_codecheck.core.retry import RetryPolicy

    _budgets, clock, ctx = _flow_setup()
    settings = settings_from_connection(
        "http://h", "AK", "SK", {"auth_type": "aksk", "max_requests_per_second": 1}
    )
    policy = RetryPolicy(max_attempts=1)
    flows = [
        flow.perform(ops.get_task_progress("t"), settings, policy, ctx)  # type: ignore[arg-type]
        for _ in range(3)
    ]
    assert isinstance(flows[0].send(None), flow.Send)
    assert isinstance(flows[1].send(None), flow.Sleep)
    assert isinstance(flows[2].send(None), flow.Sleep)
    flows[1].close()  # e.g. its task was cancelled
    clock.now += 1.0
    assert isinstance(flows[2].send(None), flow.Send)


def test_a_huge_retry_after_pauses_the_budget_at_most_max_pause() -> None:
    budget, _clock, _ = make()
    budget.observe(send(budget), throttled=True, retry_after=1e9)
    assert budget.acquire(budget.enter()) <= b.MAX_PAUSE_S + 10


def test_the_limit_a_gateway_429_names_caps_the_rate_and_its_probing() -> None:
    body = (
        b'{"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached: policy user '
        b'over ratelimit,limit:100,time:1 second", "request_id": "r"}'
    )
    assert bs.stated_limit(body) == 100.0
    assert bs.stated_limit(body.replace(b"100,time:1 second", b"600,time:1 minute")) == 10.0
    assert bs.stated_limit(b'{"error_code": "APIGW.0308"}') is None
    budget, clock, notes = make()
    for _ in range(400):  # 400 requests/s for 1 s, over a limit of 100
        send(budget)
        clock.now += 0.0025
    budget.observe(send(budget), throttled=True, retry_after=1, stated=bs.stated_limit(body))
    assert budget.rate == pytest.approx(95)  # at once just under the named limit, no cascade of cuts
    assert "limit of 100" in notes[0][1]
    drive(budget, clock, 30)
    assert budget.rate == pytest.approx(95)  # probing never goes over it


def test_a_429_under_the_named_limit_backs_off_below_the_current_pace() -> None:
    budget, clock, _ = make()
    for _ in range(100):  # 50 requests/s: someone else shares the quota of 100
        send(budget)
        clock.now += 0.02
    budget.observe(send(budget), throttled=True, stated=100.0)
    assert budget.rate is not None
    assert budget.rate < 50
