"""Gemini's error answers, in the shapes of Google's documentation, mapped to our classes."""

from __future__ import annotations

import json

import httpx
import pytest

from dispatcher.providers import errors as pe
from dispatcher.providers.gemini.errors import gemini_error_from_response, google_error


def _map(status, body, **headers) -> pe.ProviderError:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return gemini_error_from_response(status, httpx.Headers(headers), data)


def _google(code, status, message, details=None, wrap_in_list=True):
    error = {"error": {"code": code, "message": message, "status": status, **({"details": details} if details else {})}}
    return [error] if wrap_in_list else error


QUOTA_EXCEEDED = _google(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your "
                         "plan and billing details.", details=[
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
     "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                     "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
    {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more",
                                                               "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
])


def test_resource_exhausted_in_a_list_is_a_rate_limit_with_retry_info():
    error = _map(429, QUOTA_EXCEEDED)
    assert type(error) is pe.RateLimitError
    assert error.retry_after == 37.0
    assert error.message.startswith("You exceeded your current quota")


def test_retry_after_header_wins_over_retry_info():
    assert _map(429, QUOTA_EXCEEDED, **{"retry-after": "5"}).retry_after == 5.0


def test_resource_exhausted_without_details():
    error = _map(429, _google(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
                              wrap_in_list=False))
    assert (type(error), error.retry_after) == (pe.RateLimitError, None)


def test_token_count_over_the_window_is_a_context_window_error():
    error = _map(400, _google(400, "INVALID_ARGUMENT", "The input token count (1200345) exceeds the "
                              "maximum number of tokens allowed (1048576)."))
    assert type(error) is pe.ContextWindowExceededError


def test_bad_api_key_is_an_authentication_error_though_google_says_400():
    body = _google(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details=[
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
         "message": "API key not valid. Please pass a valid API key."},
    ])
    error = _map(400, body)
    assert type(error) is pe.AuthenticationError
    assert error.deployment_specific and not error.retryable


def test_safety_refusal_is_a_content_policy_violation():
    error = _map(400, _google(400, "INVALID_ARGUMENT", "The request was blocked because it violates "
                              "the safety settings (PROHIBITED_CONTENT)."))
    assert type(error) is pe.ContentPolicyViolationError


@pytest.mark.parametrize("status, google_status, message, cls", [
    (400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unknown name \"foo\": Cannot find field.", pe.BadRequestError),
    (400, "FAILED_PRECONDITION", "User location is not supported for the API use.", pe.BadRequestError),
    (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established "
                               "identity). Please use API Key or other form of API consumer identity to call this API.",
     pe.AuthenticationError),
    (404, "NOT_FOUND", "models/gemini-9-ultra is not found for API version v1main, or is not supported "
                       "for generateContent.", pe.NotFoundError),
    (500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                      "https://developers.generativeai.google/guide/troubleshooting", pe.ServerError),
    (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", pe.ServerError),
    (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.", pe.ProviderTimeoutError),
])
def test_status_strings_decide_the_class(status, google_status, message, cls):
    error = _map(status, _google(status, google_status, message))
    assert type(error) is cls
    assert error.message == message and error.status_code == status


def test_unavailable_keeps_the_retry_after_header():
    error = _map(503, _google(503, "UNAVAILABLE", "The model is overloaded."), **{"retry-after": "3"})
    assert (type(error), error.retry_after) == (pe.ServerError, 3.0)


def test_openai_shaped_errors_still_map_as_openais():
    body = {"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}
    assert type(_map(429, body)) is pe.RateLimitError
    assert type(_map(502, b"upstream connect error")) is pe.ServerError


def test_a_proxy_error_whose_message_is_googles_json_is_unwrapped():
    inner = json.dumps(_google(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
                               wrap_in_list=False), indent=2)
    body = {"error": {"message": inner, "code": 429, "status": "Too Many Requests"}}
    assert google_error(json.dumps(body).encode())["status"] == "RESOURCE_EXHAUSTED"
    assert type(_map(429, body)) is pe.RateLimitError


def test_the_body_is_kept_as_google_sent_it():
    error = _map(429, QUOTA_EXCEEDED)
    assert json.loads(error.body) == QUOTA_EXCEEDED
