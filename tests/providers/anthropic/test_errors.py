"""Anthropic error responses and rate-limit headers mapped onto our error classes."""

from __future__ import annotations

from datetime import datetime, timezone

import anthropic.types
import httpx
import orjson
import pytest

from dispatcher.config.secrets import Secret
from dispatcher.providers import errors as pe
from dispatcher.providers.anthropic.errors import error_from_response, rate_limit_info, retry_after_seconds

NOW = 1_800_000_000.0


def _body(error_type: str, message: str) -> bytes:
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}
    if error_type != "request_too_large":  # in Anthropic's errors page, not in the SDK's ErrorType
        anthropic.types.ErrorResponse.model_validate(body)  # the shape Anthropic's SDK reads
    return orjson.dumps(body)


def _map(status: int, error_type: str, message: str = "something failed", **headers) -> pe.ProviderError:
    return error_from_response(status, httpx.Headers(headers), _body(error_type, message))


def _rfc3339(seconds_from_now: float) -> str:
    when = datetime.fromtimestamp(NOW + seconds_from_now, tz=timezone.utc)
    return when.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("status, error_type, cls", [
    (400, "invalid_request_error", pe.BadRequestError),
    (401, "authentication_error", pe.AuthenticationError),
    (403, "permission_error", pe.AuthenticationError),
    (404, "not_found_error", pe.NotFoundError),
    (413, "request_too_large", pe.BadRequestError),
    (429, "rate_limit_error", pe.RateLimitError),
    (500, "api_error", pe.ServerError),
    (529, "overloaded_error", pe.ServerError),
    (402, "billing_error", pe.InsufficientQuotaError),
    (504, "timeout_error", pe.ServerError),
])
def test_error_types_map_to_classes(status, error_type, cls):
    error = _map(status, error_type)
    assert type(error) is cls
    assert error.status_code == status
    assert error.message == "something failed"
    assert error.request_id == "req_011CSHoEeqs5C35K2UUqR7Fy"


def test_overloaded_is_retried():
    assert _map(529, "overloaded_error", "Overloaded").retryable


def test_prompt_too_long_goes_to_context_window_fallbacks():
    error = _map(400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum")
    assert type(error) is pe.ContextWindowExceededError
    assert not error.retryable


def test_low_credit_is_insufficient_quota():
    error = _map(400, "invalid_request_error",
                 "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing.")
    assert type(error) is pe.InsufficientQuotaError


def test_content_filtering_is_a_content_policy_violation():
    error = _map(400, "invalid_request_error", "Output blocked by content filtering policy")
    assert type(error) is pe.ContentPolicyViolationError


def test_request_id_header_wins():
    error = _map(500, "api_error", **{"request-id": "req_from_header"})
    assert error.request_id == "req_from_header"


def test_retry_after_header_on_429():
    error = _map(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit",
                 **{"retry-after": "17"})
    assert error.retry_after == 17.0


def test_retry_after_from_the_exhausted_limits_reset():
    headers = httpx.Headers({
        "anthropic-ratelimit-requests-remaining": "40",
        "anthropic-ratelimit-requests-reset": _rfc3339(2),
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": _rfc3339(12.5),
        "anthropic-ratelimit-output-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": _rfc3339(8),
    })
    assert retry_after_seconds(headers, now=NOW) == pytest.approx(12.5)


def test_retry_after_from_the_earliest_reset_when_none_says_exhausted():
    headers = httpx.Headers({
        "anthropic-ratelimit-tokens-reset": _rfc3339(30),
        "anthropic-ratelimit-requests-reset": _rfc3339(4),
    })
    assert retry_after_seconds(headers, now=NOW) == pytest.approx(4)
    assert retry_after_seconds(httpx.Headers({}), now=NOW) is None
    assert retry_after_seconds(httpx.Headers({"anthropic-ratelimit-tokens-reset": "soon"}), now=NOW) is None


def test_429_without_headers_has_no_retry_after():
    assert _map(429, "rate_limit_error").retry_after is None


def test_529_keeps_retry_after():
    assert _map(529, "overloaded_error", **{"retry-after": "3"}).retry_after == 3.0


def test_rate_limit_info_from_headers():
    info = rate_limit_info(httpx.Headers({
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": _rfc3339(1.2),
        "anthropic-ratelimit-tokens-remaining": "39000",
        "anthropic-ratelimit-tokens-reset": _rfc3339(6),
    }), now=NOW)
    assert info.remaining_requests == 49 and info.remaining_tokens == 39000
    assert info.reset_requests_s == pytest.approx(1.2) and info.reset_tokens_s == pytest.approx(6)
    assert rate_limit_info(httpx.Headers({}), now=NOW) is None


def test_bodies_that_are_not_anthropics():
    gateway = error_from_response(502, httpx.Headers(), b"<html>Bad Gateway</html>")
    assert type(gateway) is pe.ServerError and "Bad Gateway" in gateway.message
    proxy = error_from_response(429, httpx.Headers(), b'{"error": "slow down"}')
    assert type(proxy) is pe.RateLimitError and proxy.message == "slow down"
    assert type(error_from_response(409, httpx.Headers(), b"")) is pe.ProviderError


def test_secrets_are_scrubbed_from_error_text(monkeypatch):
    monkeypatch.setenv("LLMD_TEST_ANTHROPIC_KEY", "sk-ant-api03-secretvalue")
    Secret("os.environ/LLMD_TEST_ANTHROPIC_KEY", "test").resolve()
    error = _map(401, "authentication_error", "invalid x-api-key: sk-ant-api03-secretvalue")
    assert "sk-ant-api03-secretvalue" not in error.message
    assert "sk-ant-api03-secretvalue" not in (error.body or "")


def test_an_exhausted_input_or_output_token_limit_is_reported_with_its_reset():
    now = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc).timestamp()
    headers = httpx.Headers({
        "anthropic-ratelimit-requests-remaining": "40",
        "anthropic-ratelimit-requests-reset": "2026-11-30T12:00:01Z",
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": "2026-11-30T12:00:07Z",
        "anthropic-ratelimit-output-tokens-remaining": "900",
        "anthropic-ratelimit-output-tokens-reset": "2026-11-30T12:00:02Z",
    })
    info = rate_limit_info(headers, now=now)
    # Input tokens are the scarcest: the deployment pauses until their reset (7 s), not 2 s.
    assert (info.remaining_requests, info.remaining_tokens) == (40, 0)
    assert info.reset_tokens_s == 7.0 and info.reset_requests_s == 1.0
