"""The in-process mock provider: deterministic replies, usage, directives, latency."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest

from dispatcher.config.loader import parse_config
from dispatcher.deployments import build_deployments
from dispatcher.providers import errors as pe
from dispatcher.providers.mock.adapter import MockProvider
from dispatcher.providers.mock.replies import directives, fingerprint, last_user_text, mock_reply


def _deployment(**params):
    params.setdefault("model", "mock/echo")
    config = parse_config({"model_list": [{"model_name": "m", "litellm_params": params}]})
    return build_deployments(config).by_id["m#0"]


def _provider(**params) -> MockProvider:
    return MockProvider(_deployment(**params), rng=random.Random(7))


def _body(content="Hello mock", **extra) -> bytes:
    return json.dumps({"model": "echo", "messages": [{"role": "user", "content": content}], **extra}).encode()


def _complete(provider, body, timeout=5.0):
    return asyncio.run(provider.complete(body, timeout))


def test_reply_is_a_chat_completion():
    completion = _complete(_provider(), _body("What is 2+2?"))
    data = json.loads(completion.body)
    assert completion.status_code == 200
    assert data["object"] == "chat.completion"
    assert data["model"] == "echo"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "Mock reply to: What is 2+2?"}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert completion.request_id.startswith("mock-")


def test_usage_matches_body():
    completion = _complete(_provider(), _body())
    data = json.loads(completion.body)
    usage = completion.usage
    assert usage.prompt_tokens == data["usage"]["prompt_tokens"] > 0
    assert usage.completion_tokens == data["usage"]["completion_tokens"] > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_deterministic():
    first = _complete(_provider(), _body("same prompt"))
    second = _complete(_provider(), _body("same prompt"))
    other = _complete(_provider(), _body("other prompt"))
    assert first.body == second.body
    assert first.body != other.body


def test_fixed_response():
    completion = _complete(_provider(mock_response="always this"), _body())
    assert json.loads(completion.body)["choices"][0]["message"]["content"] == "always this"


def test_max_tokens_truncates_with_length_finish():
    completion = _complete(_provider(), _body("x" * 200, max_tokens=2))
    data = json.loads(completion.body)
    assert completion.usage.completion_tokens == 2
    assert data["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    "directive, cls, status",
    [
        ("[[mock:status=500]]", pe.ServerError, 500),
        ("[[mock:status=503]]", pe.ServerError, 503),
        ("[[mock:status=429]]", pe.RateLimitError, 429),
        ("[[mock:status=401]]", pe.AuthenticationError, 401),
        ("[[mock:status=404]]", pe.NotFoundError, 404),
        ("[[mock:status=400]]", pe.BadRequestError, 400),
        ("[[mock:context_window]]", pe.ContextWindowExceededError, 400),
        ("[[mock:content_policy]]", pe.ContentPolicyViolationError, 400),
    ],
)
def test_directives_map_to_error_classes(directive, cls, status):
    with pytest.raises(pe.ProviderError) as info:
        _complete(_provider(), _body(f"please fail {directive}"))
    assert type(info.value) is cls
    assert info.value.status_code == status


def test_invalid_json_directive():
    with pytest.raises(pe.InvalidResponseError):
        _complete(_provider(), _body("[[mock:invalid_json]]"))


def test_directive_in_content_parts():
    body = json.dumps(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "[[mock:status=502]]"}]}]}
    ).encode()
    with pytest.raises(pe.ServerError):
        _complete(_provider(), body)


def test_body_not_json_is_bad_request():
    with pytest.raises(pe.BadRequestError):
        _complete(_provider(), b"{not json")


@pytest.mark.parametrize("directive", ["[[mock:status=abc]]", "[[mock:sleep=soon]]"])
def test_malformed_directive_is_a_provider_error(directive):
    with pytest.raises(pe.ProviderError):
        _complete(_provider(), _body(directive))


def test_sleep_beyond_timeout_is_timeout():
    started = time.monotonic()
    with pytest.raises(pe.ProviderTimeoutError):
        _complete(_provider(), _body("[[mock:sleep=5]]"), timeout=0.05)
    elapsed = time.monotonic() - started
    assert 0.04 <= elapsed < 1.0  # waited the timeout, not the full sleep


def test_latency_beyond_timeout_is_timeout():
    provider = _provider(mock_latency_ms=2000)
    started = time.monotonic()
    with pytest.raises(pe.ProviderTimeoutError):
        _complete(provider, _body(), timeout=0.03)
    assert time.monotonic() - started < 1.0


def test_latency_within_timeout_answers():
    provider = _provider(mock_latency_ms=20, mock_latency_jitter_ms=10)
    started = time.monotonic()
    completion = _complete(provider, _body(), timeout=1.0)
    elapsed = time.monotonic() - started
    assert completion.status_code == 200
    assert elapsed >= 0.009


def test_latency_is_bounded_by_jitter():
    provider = _provider(mock_latency_ms=100, mock_latency_jitter_ms=30)
    samples = [provider._latency_s() for _ in range(200)]
    assert all(0.07 <= s <= 0.13 for s in samples)
    assert len(set(samples)) > 1


def test_negative_latency_is_clamped():
    provider = _provider(mock_latency_ms=5, mock_latency_jitter_ms=50)
    assert all(s >= 0.0 for s in (provider._latency_s() for _ in range(100)))


def test_directives_helper():
    body = {"messages": [{"role": "user", "content": "[[mock:status=500]] and [[mock:sleep=0.1]]"}]}
    assert directives(body) == {"status": "500", "sleep": "0.1"}
    assert directives({"messages": [{"role": "user", "content": "no directives"}]}) == {}


def test_fingerprint_and_last_user_text():
    a = {"messages": [{"role": "user", "content": "x"}], "temperature": 0}
    b = {"messages": [{"role": "user", "content": "x"}], "temperature": 1}
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint({"messages": [{"role": "user", "content": "y"}]})
    history = {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "part"}]},
        ]
    }
    assert last_user_text(history) == "second part"
    assert last_user_text({"messages": [{"role": "system", "content": "s"}]}) == ""


def test_mock_reply_sleep_is_reported():
    reply = mock_reply({"messages": [{"role": "user", "content": "[[mock:sleep=0.25]]"}]}, "echo")
    assert reply.status == 200
    assert reply.sleep_s == 0.25
