"""The GCRA schedule: even spacing, no bursts beyond the lookahead, safe refunds."""

from __future__ import annotations

import pytest

from dispatcher.limits.schedule import ScheduleState, plan, shift


def test_requests_are_spaced_by_the_interval_within_the_horizon():
    state = ScheduleState()
    times, next_free, _, _ = plan(state, now=100.0, count=10, tokens=1, request_interval=0.1,
                            token_interval=0.0, horizon=0.35)
    assert times == pytest.approx([100.0, 100.1, 100.2, 100.3])
    assert next_free == pytest.approx(100.4)
    later, _, _, _ = plan(state, now=100.05, count=10, tokens=1, request_interval=0.1,
                    token_interval=0.0, horizon=0.35)
    assert later == pytest.approx([100.4])  # nothing new until the schedule has room


def test_token_budget_spaces_large_requests_further_apart():
    state = ScheduleState()
    times, _, _, _ = plan(state, now=0.0, count=3, tokens=500, request_interval=0.01,
                    token_interval=0.001, horizon=5.0)
    assert times == pytest.approx([0.0, 0.5, 1.0])  # 500 tokens take 0.5 s to refill


def test_an_idle_schedule_does_not_bank_capacity():
    state = ScheduleState(r=10.0, t=10.0)
    times, _, _, _ = plan(state, now=1000.0, count=3, tokens=1, request_interval=1.0,
                    token_interval=0.0, horizon=0.0)
    assert times == [1000.0]  # one now, not a burst for the idle time


def test_a_pause_holds_every_send_until_it_ends():
    state = ScheduleState(p=50.0)
    times, next_free, _, _ = plan(state, now=10.0, count=3, tokens=1, request_interval=1.0,
                            token_interval=0.0, horizon=5.0)
    assert times == [] and next_free == 50.0


def test_refunds_never_reach_before_the_lookahead_and_charges_start_now():
    assert shift(20.0, -15.0, now=10.0, floor_offset=0.5) == pytest.approx(10.5)
    assert shift(10.2, -1.0, now=10.0, floor_offset=0.5) == pytest.approx(10.2)  # already inside
    assert shift(5.0, 2.0, now=10.0, floor_offset=0.5) == pytest.approx(12.0)
    assert shift(15.0, 2.0, now=10.0, floor_offset=0.5) == pytest.approx(17.0)
