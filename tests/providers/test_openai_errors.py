"""Mapping OpenAI-compatible error responses onto our error classes."""

from __future__ import annotations

import json

import httpx
import pytest

from dispatcher.config.secrets import Secret
from dispatcher.providers import errors as pe
from dispatcher.providers.openai.errors import MAX_MESSAGE_CHARS, error_from_response


def _body(message="boom", code=None, error_type="invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": error_type, "param": None, "code": code}}).encode()


def _map(status, body=b"", **headers) -> pe.ProviderError:
    return error_from_response(status, httpx.Headers(headers), body)


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, pe.BadRequestError),
        (401, pe.AuthenticationError),
        (403, pe.AuthenticationError),
        (404, pe.NotFoundError),
        (413, pe.BadRequestError),
        (422, pe.BadRequestError),
        (429, pe.RateLimitError),
        (408, pe.ProviderTimeoutError),
        (500, pe.ServerError),
        (502, pe.ServerError),
        (503, pe.ServerError),
    ],
)
def test_status_mapping(status, cls):
    error = _map(status, _body("something failed"))
    assert type(error) is cls
    assert error.status_code == status
    assert error.message == "something failed"


def test_retryable_flags_follow_class():
    assert not _map(400, _body()).retryable
    assert not _map(401, _body()).retryable
    assert _map(429, _body()).retryable
    assert _map(500, _body()).retryable


def test_insufficient_quota_by_code():
    error = _map(429, _body("You exceeded your current quota", code="insufficient_quota", error_type="insufficient_quota"))
    assert type(error) is pe.InsufficientQuotaError
    assert not error.retryable


def test_insufficient_quota_by_type_only():
    error = _map(429, _body("out of credit", code=None, error_type="insufficient_quota"))
    assert type(error) is pe.InsufficientQuotaError


def test_plain_rate_limit_with_retry_after():
    error = _map(429, _body("Rate limit reached for requests", code="rate_limit_exceeded"), **{"retry-after": "7"})
    assert type(error) is pe.RateLimitError
    assert error.retry_after == 7.0


def test_server_error_keeps_retry_after():
    error = _map(503, _body("overloaded"), **{"retry-after-ms": "1500"})
    assert type(error) is pe.ServerError
    assert error.retry_after == pytest.approx(1.5)


def test_context_window_by_code():
    error = _map(400, _body("too long", code="context_length_exceeded"))
    assert type(error) is pe.ContextWindowExceededError
    assert isinstance(error, pe.BadRequestError)


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens",
        "prompt is too long: 210000 tokens > 200000 maximum",
        "Input is too long for requested model.",
    ],
)
def test_context_window_by_message(message):
    assert type(_map(400, _body(message))) is pe.ContextWindowExceededError


def test_context_window_on_413():
    assert type(_map(413, _body("too many tokens in request"))) is pe.ContextWindowExceededError


def test_content_policy_by_code():
    error = _map(400, _body("nope", code="content_policy_violation"))
    assert type(error) is pe.ContentPolicyViolationError


def test_content_policy_by_message():
    message = "Your request was rejected as a result of our safety system."
    assert type(_map(400, _body(message))) is pe.ContentPolicyViolationError


def test_ordinary_bad_request_stays_bad_request():
    error = _map(400, _body("Invalid value for 'temperature'", code="invalid_value"))
    assert type(error) is pe.BadRequestError


def test_non_json_body():
    error = _map(502, b"<html>Bad Gateway</html>")
    assert type(error) is pe.ServerError
    assert error.message == "<html>Bad Gateway</html>"
    assert error.body == "<html>Bad Gateway</html>"


def test_empty_body_message_names_status():
    error = _map(500, b"")
    assert error.message == "HTTP 500"


def test_error_as_string_and_top_level_message():
    assert _map(400, b'{"error": "plain string error"}').message == "plain string error"
    assert _map(400, b'{"message": "top level", "code": 400}').message == "top level"


def test_json_without_error_falls_back_to_text():
    error = _map(500, b'{"detail": "x"}')
    assert error.message == '{"detail": "x"}'


def test_invalid_utf8_does_not_raise():
    error = _map(500, b"\xff\xfe broken")
    assert type(error) is pe.ServerError
    assert "broken" in error.message


def test_request_id_from_header():
    error = _map(500, _body("x"), **{"x-request-id": "req_123"})
    assert error.request_id == "req_123"


def test_message_truncated():
    error = _map(400, _body("x" * (MAX_MESSAGE_CHARS + 500)))
    assert len(error.message) == MAX_MESSAGE_CHARS


def test_other_client_errors_are_bad_requests_and_not_retried():
    error = _map(409, _body("conflict"))
    assert type(error) is pe.BadRequestError and not error.retryable
    assert "HTTP 409" in error.message and "conflict" in error.message


def test_unexpected_status():
    error = _map(302, _body("moved"))
    assert type(error) is pe.ProviderError
    assert "unexpected HTTP 302" in error.message


def test_401_echoing_key_is_redacted():
    body = _body("Incorrect API key provided: sk-proj-abcDEF1234567890. You can find your API key at ...",
                 code="invalid_api_key")
    error = _map(401, body)
    assert type(error) is pe.AuthenticationError
    assert "sk-proj-abcDEF1234567890" not in error.message
    assert "sk-proj-abcDEF1234567890" not in error.body
    assert "Incorrect API key provided" in error.message


def test_401_echoing_known_literal_secret_is_redacted():
    literal = "localkey-zz-49fa21"
    Secret(literal)  # a literal key from config is remembered
    error = _map(401, _body(f"key {literal} is not valid"))
    assert literal not in error.message
    assert literal not in error.body


@pytest.mark.parametrize("body", [
    # DeepSeek's refusal, and DashScope's (Qwen) data inspection failure.
    json.dumps({"error": {"message": "Content Exists Risk", "type": "invalid_request_error"}}).encode(),
    json.dumps({"code": "data_inspection_failed",
                "message": "Input data may contain inappropriate content."}).encode(),
])
def test_content_refusals_of_other_openai_compatible_providers(body):
    assert type(_map(400, body)) is pe.ContentPolicyViolationError
