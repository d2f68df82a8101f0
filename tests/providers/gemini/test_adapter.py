"""The Gemini adapter over real HTTP, against a scripted server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import pytest

from dispatcher.config.loader import parse_config
from dispatcher.deployments import build_deployments
from dispatcher.providers import errors as pe
from dispatcher.providers.provider_set import ProviderSet
from dispatcher.providers.registry import provider_spec
from tests.providers.scripted_server import chat_completion, scripted_server  # noqa: F401 (fixture)

BODY = json.dumps({"model": "gemini-2.0-flash", "messages": [{"role": "user", "content": "Hello"}]}).encode()


def _call(params: dict, body: bytes = BODY):
    params = {"model": "gemini/gemini-2.0-flash", **params}
    config = parse_config({"model_list": [{"model_name": "m", "litellm_params": params}]})
    providers = ProviderSet(build_deployments(config), max_in_flight=4)

    async def main():
        try:
            return await providers.get("m#0").complete(body, timeout=5.0)
        finally:
            await providers.aclose()

    return asyncio.run(main())


def test_default_endpoint_and_key_variable():
    spec = provider_spec("gemini")
    assert spec.default_api_base == "https://generativelanguage.googleapis.com/v1beta/openai"
    assert spec.key_env == "GEMINI_API_KEY"
    config = parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": "gemini/gemini-2.0-flash"}}]})
    deployment = build_deployments(config).by_id["m#0"]
    assert (deployment.adapter, deployment.api_base) == ("gemini", spec.default_api_base)
    assert deployment.api_key.env_name == "GEMINI_API_KEY"


def test_chat_completion_with_a_bearer_key(scripted_server, monkeypatch):
    monkeypatch.setenv("LLMD_TEST_GEMINI_KEY", "AIzaSy-test-key-0001")
    scripted_server.answer(200, chat_completion("Hi from Gemini", model="gemini-2.0-flash"))
    completion = _call({"api_base": scripted_server.url + "/v1beta/openai/",
                        "api_key": "os.environ/LLMD_TEST_GEMINI_KEY"})
    [request] = scripted_server.requests
    assert request.path == "/v1beta/openai/chat/completions"
    assert request.headers["authorization"] == "Bearer AIzaSy-test-key-0001"
    assert request.body == BODY
    assert json.loads(completion.body)["choices"][0]["message"]["content"] == "Hi from Gemini"
    assert completion.usage.total_tokens == 15


def test_list_wrapped_resource_exhausted_over_http(scripted_server):
    scripted_server.answer(429, [{"error": {
        "code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}])
    with pytest.raises(pe.RateLimitError) as info:
        _call({"api_base": scripted_server.url, "api_key": "AIzaSy-test-key-0002"})
    assert info.value.retry_after == 12.0


def test_context_window_over_http(scripted_server):
    scripted_server.answer(400, [{"error": {
        "code": 400, "status": "INVALID_ARGUMENT",
        "message": "The input token count (2000001) exceeds the maximum number of tokens allowed (1048576)."}}])
    with pytest.raises(pe.ContextWindowExceededError):
        _call({"api_base": scripted_server.url, "api_key": "AIzaSy-test-key-0003"})


def test_key_in_a_google_error_never_reaches_ours(scripted_server):
    key = "AIzaSy-secret-key-77aa"
    scripted_server.answer(403, [{"error": {
        "code": 403, "status": "PERMISSION_DENIED",
        "message": f"Permission denied: Consumer 'api_key:{key}' has been suspended."}}])
    with pytest.raises(pe.AuthenticationError) as info:
        _call({"api_base": scripted_server.url, "api_key": key})
    assert key not in info.value.message and key not in (info.value.body or "")


def test_unset_key_variable_fails_before_sending(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    config = parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": "gemini/gemini-2.0-flash"}}]})
    deployments = build_deployments(config)
    providers = ProviderSet(deployments, max_in_flight=2)

    async def main():
        try:
            await providers.get("m#0").complete(BODY, timeout=5.0)
        finally:
            await providers.aclose()

    with pytest.raises(pe.MissingCredentialsError, match="GEMINI_API_KEY"):
        asyncio.run(main())
