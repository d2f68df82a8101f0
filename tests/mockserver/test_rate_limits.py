"""``RateLimits``: requests, input tokens and output tokens over one window, on their own."""

from __future__ import annotations

import random

import httpx
import pytest

from dispatcher.mockserver.limits import HELD_RETRY_S, Charge, RateLimits, SlidingWindowLimiter


def test_a_request_is_admitted_only_when_every_limit_has_room():
    limits = RateLimits(rpm=10, tpm=None, itpm=100, otpm=50, window_s=10)
    assert limits.check(0.0, Charge(tokens=0, input=60, output=10, output_budget=10)).admitted
    by_input = limits.check(1.0, Charge(0, 50, 10, 10))
    assert not by_input.admitted and by_input.limited_by == "input_tokens"
    assert by_input.retry_after_s == pytest.approx(9.0)
    assert by_input.output.admitted and by_input.output.remaining_tokens == 40  # shown, not charged
    by_output = limits.check(2.0, Charge(0, 10, 45, 45))
    assert not by_output.admitted and by_output.limited_by == "output_tokens"
    # Nothing refused was recorded anywhere.
    in_window = (limits.calls.requests_in_window, limits.input.tokens_in_window, limits.output.tokens_in_window)
    assert in_window == (1, 60, 10)
    assert limits.peaks() == {"peak_requests_in_window": 1, "peak_tokens_in_window": 0,
                              "peak_input_tokens_in_window": 60, "peak_output_tokens_in_window": 10}


def test_the_limit_that_keeps_a_request_out_longest_is_named():
    limits = RateLimits(rpm=1, tpm=None, itpm=100, otpm=None, window_s=10)
    assert limits.check(0.0, Charge(0, 10, 0, 0)).admitted
    by_requests = limits.check(5.0, Charge(0, 80, 0, 0))  # input fits; rpm waits for t=10
    assert by_requests.limited_by == "requests" and by_requests.retry_after_s == pytest.approx(5.0)
    limits = RateLimits(rpm=2, tpm=None, itpm=100, otpm=None, window_s=10)
    limits.check(0.0, Charge(0, 90, 0, 0))
    refused = limits.check(5.0, Charge(0, 20, 0, 0))
    assert refused.limited_by == "input_tokens" and refused.retry_after_s == pytest.approx(5.0)
    too_large = limits.check(6.0, Charge(0, 101, 0, 0))
    assert too_large.too_large and too_large.retry_after_s == 10


def test_output_budget_is_held_in_flight_and_the_real_count_stays():
    limits = RateLimits(None, None, None, otpm=100, window_s=10)
    first = limits.check(0.0, Charge(0, 0, output=5, output_budget=80))
    assert first.admitted and first.output.remaining_tokens == 20
    refused = limits.check(1.0, Charge(0, 0, 5, 30))
    assert not refused.admitted and refused.retry_after_s == HELD_RETRY_S
    limits.release(first)
    limits.release(first)  # idempotent: the hold is given back once
    again = limits.check(1.5, Charge(0, 0, 5, 30))
    assert again.admitted and again.output.remaining_tokens == 100 - 5 - 5 - 25


def test_held_tokens_and_the_window_together_set_retry_after():
    limiter = SlidingWindowLimiter(None, 100, window_s=10)
    limiter.admit(0.0, 60)
    limiter.admit(2.0, 20, hold=15)
    # Needs 10 more: the window frees 60 at t=10, the hold comes back "within a second".
    verdict = limiter.assess(3.0, 15)
    assert not verdict.admitted and verdict.retry_after_s == HELD_RETRY_S
    # Needs 40 more than the hold gives back: the window must free 60 (at t=10).
    verdict = limiter.assess(3.0, 80)
    assert verdict.retry_after_s == pytest.approx(7.0)


def test_holds_against_a_brute_force_model():
    """Random admissions and releases: a request fits iff window tokens + holds + its budget fit."""
    rng = random.Random(11)
    limiter = SlidingWindowLimiter(None, 500, window_s=1.0)
    events: list[tuple[float, int]] = []
    holds: list[int] = []
    now = 0.0
    for _ in range(5000):
        now += rng.random() * 0.05
        if holds and rng.random() < 0.4:
            limiter.release(holds.pop(rng.randrange(len(holds))))
        output, extra = rng.randint(1, 60), rng.randint(0, 120)
        events = [(t, k) for t, k in events if t + 1.0 > now]
        fits = sum(k for _, k in events) + sum(holds) + output + extra <= 500
        verdict = limiter.assess(now, output, extra)
        assert verdict.admitted == fits
        if fits:
            admitted = limiter.admit(now, output, extra)
            events.append((now, output))
            holds.append(extra)
            assert admitted.remaining_tokens == 500 - sum(k for _, k in events) - sum(holds)
        else:
            assert verdict.retry_after_s > 0


def test_input_token_limit_applies_to_the_openai_route_too(start_mock_provider):
    provider = start_mock_provider(itpm=30, window_s=30)
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 80}]}  # 27 prompt tokens
    url = provider.base_url + "/chat/completions"
    assert httpx.post(url, json=body, timeout=10).status_code == 200
    refused = httpx.post(url, json=body, timeout=10)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "input_tokens" and "on input tokens per 30s window: Limit 30, Used 27" in error["message"]
    assert 25 <= int(refused.headers["retry-after"]) <= 30 and refused.headers["retry-after-ms"]
    assert "x-ratelimit-limit-requests" not in refused.headers  # no rpm or tpm set
    assert provider.stats()["peak_input_tokens_in_window"] == 27
