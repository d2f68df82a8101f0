"""Reading a provider's rate-limit headers into credit, and the schedule spending it."""

from __future__ import annotations

import pytest

from dispatcher.limits import credit
from dispatcher.limits.schedule import ScheduleState, observe, plan
from dispatcher.limits.spec import LimitSpec
from dispatcher.providers.base import RateLimitInfo


def minute_spec(rpm: int = 700, tpm: int | None = None, reserve: int = 0) -> LimitSpec:
    return LimitSpec(
        "k", rpm, tpm, 60.0 / (rpm * 0.97), 60.0 / (tpm * 0.97) if tpm else 0.0,
        burst_s=60.0, urgent_reserve=(reserve, 0, 0, 0), credit_margin=(21, 0, 0, 0),
    )


def test_a_reply_allows_its_number_plus_the_room_less_margin_and_calls_in_flight():
    word = credit.read_word(
        minute_spec(), credit.Position(requests=10, in_flight=4), credit.CallSize(30, 10),
        RateLimitInfo(remaining_requests=600, limit_requests=700, reset_requests_s=59.0),
    )
    assert word == credit.Word(ceiling=10 + 600 - 21 - 4, settled=10 + 600 - 21, reset_s=59.0, kept=0)


def test_token_room_counts_in_calls_of_the_replys_size_and_the_scarcer_limit_binds():
    spec = minute_spec(rpm=700, tpm=70_000)
    spec = LimitSpec(**{**{f: getattr(spec, f) for f in spec.__dataclass_fields__}, "credit_margin": (21, 100, 0, 0)})
    word = credit.read_word(
        spec, credit.Position(requests=1), credit.CallSize(tokens=100, input_tokens=40),
        RateLimitInfo(remaining_requests=699, limit_requests=700, remaining_tokens=10_100, limit_tokens=70_000),
    )
    assert word is not None and word.settled == 1 + (10_100 - 100) // 100


def test_no_credit_from_a_provider_counting_over_a_shorter_window_or_silent_on_a_limit():
    spec = minute_spec(rpm=3600)
    short = RateLimitInfo(remaining_requests=590, limit_requests=600)  # 600 per 10 s
    assert credit.read_word(spec, credit.Position(1), credit.CallSize(30, 10), short) is None
    silent = RateLimitInfo(remaining_requests=None, remaining_tokens=5000)
    assert credit.read_word(spec, credit.Position(1), credit.CallSize(30, 10), silent) is None
    off = LimitSpec("k", 700, None, 60 / 700, 0.0)  # provider_headers: false
    full = RateLimitInfo(remaining_requests=699, limit_requests=700)
    assert credit.read_word(off, credit.Position(1), credit.CallSize(30, 10), full) is None


def test_a_configured_limit_below_the_providers_binds():
    spec = minute_spec(rpm=100)
    word = credit.read_word(
        spec, credit.Position(5), credit.CallSize(30, 10),
        RateLimitInfo(remaining_requests=9_995, limit_requests=10_000),  # 5 used of 10,000
    )
    assert word is not None and word.settled == 5 + (100 - 5) - 21


def plan_now(state: ScheduleState, spec: LimitSpec, now: float, count: int, urgent: bool = False):
    return plan(state, now=now, count=count, tokens=30, request_interval=spec.request_interval,
                token_interval=0.0, horizon=0.5, burst_s=spec.burst_s, urgent=urgent)


def test_within_a_fresh_ceiling_sends_go_at_once_and_none_beyond_it():
    spec = minute_spec()
    state = ScheduleState()
    observe(state, credit.Word(ceiling=100, settled=100, reset_s=60.0), now=1000.0)
    times, _, credited, _ = plan_now(state, spec, 1000.0, 150)
    assert times == [1000.0] * 100 and credited == 100
    state.f = 100
    times, next_free, _, _ = plan_now(state, spec, 1000.0, 10)
    assert times == [] and next_free == pytest.approx(1000.0 + credit.RECHECK_S)  # replies will say


def test_the_even_pace_takes_over_when_the_word_is_stale():
    spec = minute_spec(rpm=600)
    state = ScheduleState()
    observe(state, credit.Word(ceiling=5, settled=5, reset_s=1.0), now=1000.0)
    times, _, credited, _ = plan_now(state, spec, 1000.0 + credit.CREDIT_TTL_S + 1, 10)
    assert credited == 0 and len(times) == 5  # 0.5 s of lookahead at one per 0.103 s


def test_room_kept_for_urgent_calls_until_just_before_the_window_turns():
    spec = minute_spec()
    state = ScheduleState()
    observe(state, credit.Word(ceiling=100, settled=100, reset_s=30.0, kept=20), now=1000.0)
    bulk, _, _, urgent_room = plan_now(state, spec, 1000.0, 150)
    assert len(bulk) == 80
    assert plan_now(state, spec, 1000.0, 1)[0] == [] and plan_now(state, spec, 1000.0, 1)[3]
    assert plan_now(state, spec, 1000.0, 5, urgent=True)[0] == [1000.0] * 5
    state.f = 0
    released, _, _, _ = plan_now(state, spec, 1000.0 + 30.0 - credit.RESERVE_RELEASE_S, 50)
    assert len(released) == 15  # the rest of the kept room, a second before the room grows


def test_once_every_call_is_answered_one_probe_learns_whether_the_room_grew():
    spec = minute_spec()
    state = ScheduleState()
    observe(state, credit.Word(ceiling=3, settled=3, reset_s=5.0), now=1000.0)
    assert len(plan_now(state, spec, 1000.0, 10)[0]) == 3
    state.f = 0
    assert plan_now(state, spec, 1004.0, 10)[0] == []  # spent, and the room grows only at 1005
    assert plan_now(state, spec, 1005.0, 10)[0] == [1005.0]  # the probe
