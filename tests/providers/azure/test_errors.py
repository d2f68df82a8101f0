"""Azure OpenAI error answers, in the shapes of Azure's documentation, mapped to our classes."""

from __future__ import annotations

import json

import httpx
import pytest

from dispatcher.providers import errors as pe
from dispatcher.providers.azure.errors import azure_error_from_response


def _map(status, body, **headers) -> pe.ProviderError:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return azure_error_from_response(status, httpx.Headers(headers), data)


CONTENT_FILTERED_PROMPT = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                   "management policy. Please modify your prompt and retry.",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {
                "hate": {"filtered": True, "severity": "medium"},
                "jailbreak": {"filtered": False, "detected": False},
                "self_harm": {"filtered": False, "severity": "safe"},
                "sexual": {"filtered": False, "severity": "safe"},
                "violence": {"filtered": False, "severity": "safe"},
            },
        },
    }
}


def test_content_filter_400_is_a_content_policy_violation():
    error = _map(400, CONTENT_FILTERED_PROMPT, **{"apim-request-id": "0d9e-apim"})
    assert type(error) is pe.ContentPolicyViolationError
    assert error.message.startswith("The response was filtered")
    assert error.request_id == "0d9e-apim"
    assert "ResponsibleAIPolicyViolation" in error.body


def test_inner_error_alone_is_enough():
    # Image and newer endpoints answer with another top-level code and inner_error spelled so.
    body = {"error": {"code": "content_policy_violation_x", "message": "Your request was rejected.",
                      "inner_error": {"code": "ResponsibleAIPolicyViolation",
                                      "content_filter_results": {"violence": {"filtered": True}}}}}
    assert type(_map(400, body)) is pe.ContentPolicyViolationError
    body = {"error": {"code": "400", "message": "Rejected.", "innererror": {"code": "ResponsibleAIPolicyViolation"}}}
    assert type(_map(400, body)) is pe.ContentPolicyViolationError


def test_token_rate_limit_429_waits_retry_after_ms():
    body = {"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under "
                      "Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your "
                      "current OpenAI S0 pricing tier. Please retry after 6 seconds."}}
    error = _map(429, body, **{"retry-after-ms": "5250", "retry-after": "6",
                               "x-ratelimit-remaining-requests": "0"})
    assert type(error) is pe.RateLimitError
    assert error.retry_after == pytest.approx(5.25)


def test_429_with_only_retry_after_seconds():
    body = {"error": {"code": "429", "message": "Rate limit is exceeded. Try again in 20 seconds."}}
    error = _map(429, body, **{"retry-after": "20"})
    assert (type(error), error.retry_after) == (pe.RateLimitError, 20.0)


def test_429_without_headers_takes_the_wait_from_the_message():
    body = {"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation "
                      "have exceeded call rate limit. Please retry after 3 seconds."}}
    error = _map(429, body)
    assert (type(error), error.retry_after) == (pe.RateLimitError, 3.0)


@pytest.mark.parametrize("status, body, cls", [
    (401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key or "
                     "wrong API endpoint. Make sure to provide a valid key for an active subscription "
                     "and use a correct regional API endpoint for your resource."}}, pe.AuthenticationError),
    (404, {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource "
                     "does not exist. If you created the deployment within the last 5 minutes, "
                     "please wait a moment and try again."}}, pe.NotFoundError),
    (400, {"error": {"message": "This model's maximum context length is 128000 tokens. However, your "
                     "messages resulted in 130512 tokens. Please reduce the length of the messages.",
                     "type": "invalid_request_error", "param": "messages",
                     "code": "context_length_exceeded"}}, pe.ContextWindowExceededError),
    (400, {"error": {"code": "BadRequest", "message": "Unsupported parameter: 'max_tokens'."}}, pe.BadRequestError),
    (500, {"error": {"code": "InternalServerError", "message": "The server had an error."}}, pe.ServerError),
])
def test_other_azure_errors_map_as_openais(status, body, cls):
    assert type(_map(status, body)) is cls


def test_a_plain_400_is_not_mistaken_for_content_filtering():
    error = _map(400, {"error": {"code": "invalid_value", "message": "temperature must be <= 2",
                                 "innererror": {"code": "InvalidParameter"}}})
    assert type(error) is pe.BadRequestError


def test_non_json_error_body():
    error = _map(502, b"<html>Bad Gateway</html>")
    assert type(error) is pe.ServerError and "Bad Gateway" in error.message
