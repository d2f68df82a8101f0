"""The mock provider answers, refuses, limits and counts like a strict provider."""

from __future__ import annotations

import httpx
import pytest

from dispatcher.mockserver.limits import SlidingWindowLimiter
from tests.helpers.mock_provider import MockProvider


def chat(provider: MockProvider, content: str, key: str | None = None, **body) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    payload = {"model": "m", "messages": [{"role": "user", "content": content}], **body}
    return httpx.post(provider.base_url + "/chat/completions", json=payload, headers=headers, timeout=10)


def test_reply_is_a_deterministic_chat_completion_with_usage(mock_provider):
    first, second = chat(mock_provider, "hello"), chat(mock_provider, "hello")
    assert first.status_code == 200 and first.headers["x-request-id"]
    body = first.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Mock reply to: hello"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert second.json() == body
    stats = mock_provider.stats()
    assert stats["completed"] == 2 and stats["duplicates"] == 1 and stats["unique_completed"] == 1
    assert stats["usage"]["total_tokens"] == 2 * body["usage"]["total_tokens"]


def test_api_key_is_required_and_echoed_like_careless_providers_do(start_mock_provider):
    provider = start_mock_provider(api_key="sk-right-1234567890")
    wrong = chat(provider, "x", key="sk-wrong-0987654321")
    assert wrong.status_code == 401
    assert "sk-wrong-0987654321" in wrong.json()["error"]["message"]
    assert chat(provider, "x", key="sk-right-1234567890").status_code == 200


@pytest.mark.parametrize(
    "directive, status, code",
    [
        ("[[mock:status=503]]", 503, None),
        ("[[mock:context_window]]", 400, "context_length_exceeded"),
        ("[[mock:content_policy]]", 400, "content_policy_violation"),
    ],
)
def test_directives_script_failures(mock_provider, directive, status, code):
    response = chat(mock_provider, f"please fail {directive}")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_invalid_json_and_fail_first(mock_provider):
    broken = chat(mock_provider, "[[mock:invalid_json]]")
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    statuses = [chat(mock_provider, "flaky [[mock:fail_first=2]]").status_code for _ in range(3)]
    assert statuses == [500, 500, 200]


def test_rpm_limit_answers_429_with_retry_headers(start_mock_provider):
    provider = start_mock_provider(rpm=3, window_s=30)
    statuses = [chat(provider, f"r{i}").status_code for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = chat(provider, "again")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 25 <= int(refused.headers["retry-after"]) <= 30
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    stats = provider.stats()
    assert stats["peak_requests_in_window"] == 3 and stats["rate_limited"] == 3


def test_tpm_limit_counts_prompt_and_max_tokens(start_mock_provider):
    provider = start_mock_provider(tpm=100, window_s=30)
    assert chat(provider, "a", max_tokens=60).status_code == 200
    assert chat(provider, "b", max_tokens=60).status_code == 429  # 60 + prompt would pass 100
    assert chat(provider, "c", max_tokens=10).status_code == 200
    assert provider.stats()["peak_tokens_in_window"] <= 100


def test_reset_clears_counters(mock_provider):
    chat(mock_provider, "x")
    mock_provider.reset()
    assert mock_provider.stats()["requests"] == 0


def test_sliding_window_frees_capacity_as_requests_age():
    limiter = SlidingWindowLimiter(rpm=2, tpm=None, window_s=10)
    assert limiter.check(0.0, 1).admitted and limiter.check(1.0, 1).admitted
    refused = limiter.check(5.0, 1)
    assert not refused.admitted and refused.retry_after_s == pytest.approx(5.0)
    assert limiter.check(10.5, 1).admitted  # the request at t=0 has left the window
    assert limiter.peak_requests == 2
