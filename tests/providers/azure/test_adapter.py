"""The Azure OpenAI adapter over real HTTP, against a scripted server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import pytest

from dispatcher.config.loader import parse_config
from dispatcher.deployments import build_deployments
from dispatcher.providers import errors as pe
from dispatcher.providers.provider_set import ProviderSet
from tests.providers.scripted_server import chat_completion, scripted_server  # noqa: F401 (fixture)

BODY = json.dumps({"model": "chat-prod", "messages": [{"role": "user", "content": "Hello"}],
                   "max_tokens": 20}).encode()


def _call(params: dict, body: bytes = BODY):
    """One call through the adapter ProviderSet builds for an azure/ entry."""
    params = {"model": "azure/chat-prod", **params}
    config = parse_config({"model_list": [{"model_name": "m", "litellm_params": params}]})
    providers = ProviderSet(build_deployments(config), max_in_flight=4)

    async def main():
        try:
            return await providers.get("m#0").complete(body, timeout=5.0)
        finally:
            await providers.aclose()

    return asyncio.run(main())


def test_dated_surface_with_an_api_key(scripted_server):
    scripted_server.answer(200, chat_completion("Hi from Azure"), {
        "x-request-id": "req-1", "x-ratelimit-remaining-requests": "119",
        "x-ratelimit-remaining-tokens": "119980"})
    completion = _call({"api_base": scripted_server.url + "/", "api_version": "2024-06-01",
                        "api_key": "azure-key-abc123"})
    [request] = scripted_server.requests
    assert request.path == "/openai/deployments/chat-prod/chat/completions?api-version=2024-06-01"
    assert request.headers["api-key"] == "azure-key-abc123"
    assert "authorization" not in request.headers
    assert request.headers["content-type"] == "application/json"
    assert request.body == BODY  # passed through as it is
    assert json.loads(completion.body)["choices"][0]["message"]["content"] == "Hi from Azure"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 3)
    assert completion.request_id == "req-1"
    assert (completion.rate_limits.remaining_requests, completion.rate_limits.remaining_tokens) == (119, 119980)


def test_v1_surface_with_an_entra_token(scripted_server, monkeypatch):
    monkeypatch.setenv("LLMD_TEST_AZURE_TOKEN", "entra-token-xyz")
    scripted_server.answer(200, chat_completion())
    _call({"api_base": scripted_server.url, "api_version": "v1",
           "azure_ad_token": "os.environ/LLMD_TEST_AZURE_TOKEN"})
    [request] = scripted_server.requests
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer entra-token-xyz"
    assert "api-key" not in request.headers
    assert request.json()["model"] == "chat-prod"  # the v1 surface routes by the body's model


def test_everything_from_the_environment_as_litellm_reads_it(scripted_server, monkeypatch):
    monkeypatch.setenv("AZURE_API_BASE", scripted_server.url)
    monkeypatch.setenv("AZURE_API_VERSION", "2024-08-01-preview")
    monkeypatch.setenv("AZURE_API_KEY", "env-azure-key-1")
    scripted_server.answer(200, chat_completion())
    _call({})
    [request] = scripted_server.requests
    assert request.path == "/openai/deployments/chat-prod/chat/completions?api-version=2024-08-01-preview"
    assert request.headers["api-key"] == "env-azure-key-1"


def test_default_version_is_the_ga_one(scripted_server):
    scripted_server.answer(200, chat_completion())
    _call({"api_base": scripted_server.url, "api_key": "k-123456"})
    assert scripted_server.requests[0].path.endswith("?api-version=2024-10-21")


def test_content_filter_over_http(scripted_server):
    scripted_server.answer(400, {"error": {
        "code": "content_filter", "status": 400,
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                   "management policy.",
        "innererror": {"code": "ResponsibleAIPolicyViolation",
                       "content_filter_result": {"violence": {"filtered": True, "severity": "high"}}}}})
    with pytest.raises(pe.ContentPolicyViolationError):
        _call({"api_base": scripted_server.url, "api_key": "k-123456"})


def test_429_over_http_carries_retry_after_ms(scripted_server):
    scripted_server.answer(429, {"error": {"code": "429", "message": "Rate limit is exceeded."}},
                           {"retry-after-ms": "1500", "retry-after": "2"})
    with pytest.raises(pe.RateLimitError) as info:
        _call({"api_base": scripted_server.url, "api_key": "k-123456"})
    assert info.value.retry_after == pytest.approx(1.5)


def test_key_echoed_by_azure_never_reaches_the_error(scripted_server):
    key = "azure-secret-key-5f1e2d3c"
    scripted_server.answer(401, {"error": {"code": "401", "message": f"Access denied for key {key}."}})
    with pytest.raises(pe.AuthenticationError) as info:
        _call({"api_base": scripted_server.url, "api_key": key})
    assert key not in info.value.message and key not in (info.value.body or "")
    assert key not in str(info.value)


def test_missing_credentials_send_nothing(scripted_server):
    with pytest.raises(pe.MissingCredentialsError):
        _call({"api_base": scripted_server.url})
    assert scripted_server.requests == []
