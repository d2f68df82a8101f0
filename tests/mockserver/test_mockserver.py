"""The HTTP mock provider answers, refuses, limits and counts like a strict provider would.

Real servers on 127.0.0.1 (``tests.helpers.mock_provider``); the limiter's arithmetic is also
checked on its own against a brute-force model.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from dispatcher.mockserver.limits import SlidingWindowLimiter, format_duration
from dispatcher.providers.mock.replies import fingerprint
from dispatcher.tokens import estimate_prompt_tokens
from tests.helpers.mock_provider import MockProvider

DURATION = re.compile(r"^(\d+ms|\d+(\.\d+)?s)$")


def body_for(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


def chat(provider: MockProvider, content: str, *, key: str | None = None, **extra: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        provider.base_url + "/chat/completions", json=body_for(content, **extra), headers=headers, timeout=10
    )


def chat_concurrently(provider: MockProvider, contents: list[str]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(contents)) as pool:
        return list(pool.map(lambda c: chat(provider, c), contents))


@pytest.fixture(scope="module")
def shared_provider():
    """One option-less server for the tests that need nothing special (saves start-ups)."""
    with MockProvider() as provider:
        yield provider


@pytest.fixture
def provider(shared_provider: MockProvider) -> MockProvider:
    shared_provider.reset()
    return shared_provider


# -- replies -------------------------------------------------------------------------------

def test_reply_is_an_openai_chat_completion_with_estimated_usage(provider):
    first = chat(provider, "hello there", max_tokens=50)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/json")
    body = first.json()
    assert body["object"] == "chat.completion" and body["model"] == "m"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Mock reply to: hello there"}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == estimate_prompt_tokens(body_for("hello there"))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    second = chat(provider, "hello there", max_tokens=50)
    assert second.json() == body  # deterministic...
    assert second.headers["x-request-id"] != first.headers["x-request-id"]  # ...but each answer has its id

    without_v1 = httpx.post(provider.root_url + "/chat/completions", json=body_for("hello there"), timeout=10)
    assert without_v1.status_code == 200 and without_v1.json()["choices"] == body["choices"]

    truncated = chat(provider, "hello there", max_tokens=2).json()
    assert truncated["usage"]["completion_tokens"] == 2
    assert truncated["choices"][0]["finish_reason"] == "length"

    stats = provider.stats()
    assert stats["requests"] == 4 and stats["completed"] == 4 and stats["by_status"] == {"200": 4}
    assert stats["in_flight"] == 0
    assert stats["usage"]["total_tokens"] == 4 * usage["total_tokens"] - usage["completion_tokens"] + 2


def test_bodies_that_are_not_chat_requests_get_400(provider):
    url = provider.base_url + "/chat/completions"
    answers = [
        httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"}, timeout=10),
        httpx.post(url, json=[1, 2], timeout=10),
        httpx.post(url, json={"model": "m"}, timeout=10),
    ]
    for answer in answers:
        assert answer.status_code == 400
        assert answer.json()["error"]["type"] == "invalid_request_error"
        assert answer.headers["x-request-id"]
    stats = provider.stats()
    assert stats["by_status"] == {"400": 3} and stats["completed"] == 0


def test_wrong_key_gets_401_echoing_the_full_key_and_right_key_gets_200(start_mock_provider):
    provider = start_mock_provider(api_key="sk-right-1234567890abcdef")
    wrong = chat(provider, "x", key="sk-wrong-0987654321fedcba")
    assert wrong.status_code == 401
    error = wrong.json()["error"]
    assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
    assert error["param"] is None
    assert error["message"].startswith("Incorrect API key provided: sk-wrong-0987654321fedcba.")
    assert chat(provider, "x").status_code == 401  # no key at all
    assert chat(provider, "x", key="sk-right-1234567890abcdef").status_code == 200
    stats = provider.stats()
    assert stats["by_status"] == {"200": 1, "401": 2} and stats["completed"] == 1
    assert "sk-right" not in str(stats["options"])  # the stats never show the real key


# -- directives ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "directive, status, code",
    [
        ("[[mock:status=503]]", 503, None),
        ("[[mock:context_window]]", 400, "context_length_exceeded"),
        ("[[mock:content_policy]]", 400, "content_policy_violation"),
    ],
)
def test_directives_script_error_answers(provider, directive, status, code):
    answer = chat(provider, f"please fail {directive}")
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert provider.stats()["completed"] == 0


def test_invalid_json_directive_answers_200_with_a_body_that_is_not_json(provider):
    answer = chat(provider, "[[mock:invalid_json]]")
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()
    stats = provider.stats()
    assert stats["by_status"] == {"200": 1} and stats["completed"] == 0  # nothing billed


def test_fail_first_fails_the_first_tries_of_each_prompt(provider):
    flaky = [chat(provider, "flaky [[mock:fail_first=2]]") for _ in range(4)]
    assert [a.status_code for a in flaky] == [500, 500, 200, 200]
    assert flaky[0].json()["error"]["type"] == "server_error"
    # Another prompt has its own count.
    assert chat(provider, "other [[mock:fail_first=2]]").status_code == 500
    stats = provider.stats()
    assert stats["by_status"] == {"200": 2, "500": 3}
    assert stats["completed"] == 2 and stats["duplicates"] == 1


# -- rate limits ---------------------------------------------------------------------------

def test_rpm_limit_answers_429_with_retry_after_and_ratelimit_headers(start_mock_provider):
    provider = start_mock_provider(rpm=3, window_s=30)
    answers = [chat(provider, f"r{i}") for i in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    for answer, remaining in zip(answers[:3], ["2", "1", "0"]):
        assert answer.headers["x-ratelimit-limit-requests"] == "3"
        assert answer.headers["x-ratelimit-remaining-requests"] == remaining
        assert DURATION.match(answer.headers["x-ratelimit-reset-requests"])
        assert "retry-after" not in answer.headers
        assert "x-ratelimit-limit-tokens" not in answer.headers  # no tpm set
    refused = answers[3]
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    retry_after, retry_after_ms = int(refused.headers["retry-after"]), int(refused.headers["retry-after-ms"])
    assert 25_000 < retry_after_ms <= 30_000  # until the first request leaves the window
    assert retry_after == math.ceil(retry_after_ms / 1000)
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert DURATION.match(refused.headers["x-ratelimit-reset-requests"])

    stats = provider.stats(detail=True)
    assert stats["rate_limited"] == 2 and stats["by_status"] == {"200": 3, "429": 2}
    assert stats["peak_requests_in_window"] == 3
    assert len(stats["admitted_at"]) == 3  # refused requests are not admitted

    # A burst of concurrent calls into a fresh window: exactly the limit gets through.
    provider.reset()
    burst = chat_concurrently(provider, [f"burst {i}" for i in range(12)])
    assert sorted(a.status_code for a in burst) == [200] * 3 + [429] * 9
    assert provider.stats()["peak_requests_in_window"] == 3


def test_rpm_window_slides(start_mock_provider):
    provider = start_mock_provider(rpm=2, window_s=1)
    assert [chat(provider, f"s{i}").status_code for i in range(2)] == [200, 200]
    refused = chat(provider, "s2")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    wait_s = int(refused.headers["retry-after-ms"]) / 1000
    assert 0 < wait_s <= 1
    time.sleep(wait_s)  # exactly what the server asked for is enough
    assert chat(provider, "s2").status_code == 200
    assert provider.stats()["peak_requests_in_window"] == 2


def test_tpm_limit_charges_prompt_plus_completion_budget(start_mock_provider):
    provider = start_mock_provider(tpm=100, window_s=30)
    first_cost = estimate_prompt_tokens(body_for("a")) + 60

    first = chat(provider, "a", max_tokens=60)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    assert first.headers["x-ratelimit-remaining-tokens"] == str(100 - first_cost)

    refused = chat(provider, "b", max_tokens=60)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert 25 <= int(refused.headers["retry-after"]) <= 30
    assert refused.headers["x-ratelimit-remaining-tokens"] == str(100 - first_cost)

    assert chat(provider, "c", max_tokens=10).status_code == 200
    # Without a budget the reply's own completion tokens are charged.
    unbounded = chat(provider, "d")
    assert unbounded.status_code == 200

    too_large = chat(provider, "e", max_tokens=500)
    assert too_large.status_code == 429
    assert "too large" in too_large.json()["error"]["message"]
    assert too_large.headers["retry-after"] == "30"

    stats = provider.stats(detail=True)
    charged = [tokens for _, tokens in stats["admitted_at"]]
    assert charged == [
        first_cost,
        estimate_prompt_tokens(body_for("c")) + 10,
        unbounded.json()["usage"]["total_tokens"],
    ]
    assert stats["peak_tokens_in_window"] == sum(charged) <= 100
    assert stats["rate_limited"] == 2


# -- counting ------------------------------------------------------------------------------

def test_duplicates_are_completions_of_a_prompt_already_completed(provider):
    for content in ["same", "same", "other", "same"]:
        assert chat(provider, content).status_code == 200
    stats = provider.stats(detail=True)
    assert stats["completed"] == 4 and stats["duplicates"] == 2 and stats["unique_completed"] == 2
    assert stats["fingerprint_counts"] == {
        fingerprint(body_for("same")): 3,
        fingerprint(body_for("other")): 1,
    }
    assert "fingerprint_counts" not in provider.stats()


def test_reset_clears_counters_fail_first_tries_and_windows(start_mock_provider):
    provider = start_mock_provider(rpm=2, window_s=60)
    flaky = "flaky [[mock:fail_first=1]]"
    assert [chat(provider, flaky).status_code for _ in range(3)] == [500, 200, 429]
    provider.reset()
    stats = provider.stats(detail=True)
    assert stats["requests"] == 0 and stats["by_status"] == {} and stats["completed"] == 0
    assert stats["peak_requests_in_window"] == 0 and stats["admitted_at"] == []
    assert stats["fingerprint_counts"] == {} and stats["usage"]["total_tokens"] == 0
    assert [chat(provider, flaky).status_code for _ in range(3)] == [500, 200, 429]


# -- faults, latency, shutdown -------------------------------------------------------------

def test_latency_with_jitter_and_concurrency_are_seen(start_mock_provider):
    # Long enough that all 8 are in flight together even when threads start late on a loaded machine.
    provider = start_mock_provider(latency_ms=700, jitter_ms=100, seed=1)
    started = time.monotonic()
    timings: list[float] = []

    def timed(content: str) -> int:
        t0 = time.monotonic()
        status = chat(provider, content).status_code
        timings.append(time.monotonic() - t0)
        return status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(timed, [f"slow {i}" for i in range(8)]))
    assert statuses == [200] * 8
    assert min(timings) >= 0.6 and time.monotonic() - started < 2.5  # all waited, together
    stats = provider.stats()
    assert stats["max_in_flight"] == 8 and stats["in_flight"] == 0


def test_error_rate_and_hang_rate(start_mock_provider):
    provider = start_mock_provider(error_rate=0.5, hang_rate=1.0, hang_s=1.0, seed=3)
    timings: dict[int, list[float]] = {}
    lock = threading.Lock()

    def timed(content: str) -> None:
        t0 = time.monotonic()
        answer = chat(provider, content)
        with lock:
            timings.setdefault(answer.status_code, []).append(time.monotonic() - t0)
        if answer.status_code == 500:
            assert answer.json()["error"]["type"] == "server_error"

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(timed, [f"p{i}" for i in range(10)]))
    assert set(timings) == {200, 500}
    # Errors answer at once, the others hang hang_s first (a wide gap: the suite runs loaded).
    assert max(timings[500]) < 0.7
    assert min(timings[200]) >= 1.0
    assert provider.stats()["completed"] == len(timings[200])


def test_sigterm_stops_promptly_even_with_a_hung_call(start_mock_provider):
    provider = start_mock_provider(hang_rate=1.0)  # hangs an hour
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(provider.base_url + "/chat/completions", json=body_for("stuck"), timeout=0.3)
    assert provider.stats()["in_flight"] == 1  # the provider is still "working" on it
    started = time.monotonic()
    assert provider.stop() == 0
    assert time.monotonic() - started < 3


def test_helper_reports_why_the_server_did_not_start():
    with pytest.raises(RuntimeError, match="rpm must be at least 1"):
        MockProvider(rpm=0).start()


# -- the limiter on its own ----------------------------------------------------------------

def test_limiter_matches_a_brute_force_sliding_window():
    """Random traffic (enough to exercise the list compaction) against an obvious model."""
    rng = random.Random(5)
    rpm, tpm, window = 40, 900, 1.0
    limiter = SlidingWindowLimiter(rpm, tpm, window)
    live: list[tuple[float, int]] = []  # the model: admissions still in the window
    peak_requests = peak_tokens = 0
    now = 0.0

    def fits(events: list[tuple[float, int]], at: float, tokens: int) -> bool:
        inside = [k for t, k in events if t + window > at]
        return len(inside) < rpm and sum(inside) + tokens <= tpm

    for _ in range(12_000):
        now += rng.random() * 0.02
        tokens = rng.choice([rng.randint(1, 40), rng.randint(1, 40), rng.randint(1, 1000)])
        live = [(t, k) for t, k in live if t + window > now]
        verdict = limiter.check(now, tokens)
        assert verdict.admitted == fits(live, now, tokens)
        if verdict.admitted:
            live.append((now, tokens))
            peak_requests = max(peak_requests, len(live))
            peak_tokens = max(peak_tokens, sum(k for _, k in live))
        elif tokens > tpm:
            assert verdict.too_large and verdict.retry_after_s == window
        else:
            # The earliest moment it fits is when some admission leaves the window.
            expected = next(t + window for t, _ in live if fits(live, t + window, tokens)) - now
            assert verdict.retry_after_s == pytest.approx(expected)
            assert not fits(live, now + expected - 1e-6, tokens)
        assert verdict.remaining_requests == rpm - len(live)
        assert verdict.remaining_tokens == tpm - sum(k for _, k in live)
    assert (limiter.peak_requests, limiter.peak_tokens) == (peak_requests, peak_tokens)
    assert peak_requests <= rpm and peak_tokens <= tpm


def test_limiter_without_limits_admits_everything_and_measures_peaks():
    limiter = SlidingWindowLimiter(None, None, window_s=10)
    for at in (0.0, 1.0, 2.0, 10.5, 11.0):
        assert limiter.check(at, 5).admitted
    assert (limiter.peak_requests, limiter.peak_tokens) == (3, 15)
    assert limiter.headers(limiter.check(12.0, 1)) == {}


@pytest.mark.parametrize(
    "seconds, text",
    [(0.0, "0ms"), (0.0004, "1ms"), (0.12, "120ms"), (0.9999, "1s"), (1.5, "1.5s"), (59.25, "59.25s")],
)
def test_durations_are_formatted_like_openai_headers(seconds, text):
    assert format_duration(seconds) == text
