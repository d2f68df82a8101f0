"""The mock speaks Azure OpenAI's URLs, headers and error shapes.

Driven with the official openai SDK's ``AzureOpenAI`` client (and raw HTTP where the SDK would
hide the URL or header under test), against a mock provider process.
"""

from __future__ import annotations

import base64
from array import array
from typing import Any

import httpx
import openai
import pytest

from dispatcher.mockserver.azure import CONTENT_FILTER_TRIGGER
from dispatcher.mockserver.embeddings import embedding_vector
from tests.helpers.mock_provider import MockProvider

VERSION = "2024-10-21"
CHAT = "/openai/deployments/gpt-4o-prod/chat/completions"


def azure(provider: MockProvider, **options: Any) -> openai.AzureOpenAI:
    options.setdefault("api_key", "azure-key")
    return openai.AzureOpenAI(azure_endpoint=provider.root_url, api_version=VERSION, max_retries=0, **options)


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def post(provider: MockProvider, path: str, body: dict[str, Any], headers: dict[str, str] | None = None,
         params: dict[str, str] | None = None) -> httpx.Response:
    headers = {"api-key": "azure-key"} if headers is None else headers
    params = {"api-version": VERSION} if params is None else params
    return httpx.post(provider.root_url + path, json=body, headers=headers, params=params, timeout=10)


@pytest.fixture(scope="module")
def shared_provider():
    with MockProvider() as provider:
        yield provider


@pytest.fixture
def provider(shared_provider: MockProvider) -> MockProvider:
    shared_provider.reset()
    return shared_provider


def test_chat_on_a_deployment_url_with_azure_filter_results(provider):
    with azure(provider) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-prod", messages=user("hi"))
        completion = raw.parse()
    assert completion.choices[0].message.content == "Mock reply to: hi"
    assert completion.model == "gpt-4o-prod"
    extra = completion.model_extra or {}
    prompt_filter = extra["prompt_filter_results"][0]["content_filter_results"]
    assert prompt_filter["hate"] == {"filtered": False, "severity": "safe"}
    assert completion.choices[0].model_extra["content_filter_results"]["violence"]["filtered"] is False
    assert raw.headers["apim-request-id"] and raw.headers["x-request-id"]

    # Without a model in the body, the deployment in the URL names it.
    plain = post(provider, CHAT, {"messages": user("hi")})
    assert plain.status_code == 200 and plain.json()["model"] == "gpt-4o-prod"
    routes = provider.stats()["by_route"]
    assert routes["azure.chat"]["completed"] == 2 and "openai.chat" not in routes


def test_api_version_is_required_and_checked(provider):
    missing = post(provider, CHAT, {"messages": user("hi")}, params={})
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "404", "message": "Resource not found"}}
    bad = post(provider, CHAT, {"messages": user("hi")}, params={"api-version": "2024"})
    assert bad.status_code == 400
    assert bad.json() == {"error": {"code": "BadRequest", "message": "API version not supported"}}
    preview = post(provider, CHAT, {"messages": user("hi")}, params={"api-version": "2025-04-01-preview"})
    assert preview.status_code == 200


def test_a_key_or_an_entra_token_is_required(start_mock_provider):
    provider = start_mock_provider(api_key="azure-right")
    nothing = post(provider, CHAT, {"messages": user("hi")}, headers={})
    assert nothing.status_code == 401 and nothing.json()["error"]["code"] == "401"
    assert "invalid subscription key" in nothing.json()["error"]["message"]
    with azure(provider, api_key="azure-wrong") as client, pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="d", messages=user("hi"))
    with azure(provider, api_key=None, azure_ad_token="not-it") as client:
        with pytest.raises(openai.AuthenticationError) as token:
            client.chat.completions.create(model="d", messages=user("hi"))
    assert "Access token is missing, invalid" in str(token.value)

    with azure(provider, api_key="azure-right") as client:
        assert client.chat.completions.create(model="d", messages=user("hi")).choices
    with azure(provider, api_key=None, azure_ad_token="azure-right") as client:
        assert client.chat.completions.create(model="d", messages=user("hi")).choices
    echoed = post(provider, CHAT, {"messages": user("[[mock:echo_key]]")}, headers={"api-key": "azure-right"})
    assert echoed.json()["choices"][0]["message"]["content"] == "You called me with: api-key: azure-right"


@pytest.mark.parametrize("prompt", [f"tell me about {CONTENT_FILTER_TRIGGER.upper()}", "x [[mock:content_policy]]"])
def test_content_filter_refuses_with_azure_inner_error(provider, prompt):
    with azure(provider) as client, pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-4o-prod", messages=user(prompt))
    assert refused.value.code == "content_filter"
    error = refused.value.body
    assert error["param"] == "prompt" and error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert error["innererror"]["content_filter_result"]["violence"] == {"filtered": True, "severity": "medium"}
    assert provider.stats()["completed"] == 0


def test_rate_limits_answer_azure_429s_with_retry_after_ms(start_mock_provider):
    provider = start_mock_provider(rpm=1, window_s=30)
    assert post(provider, CHAT, {"messages": user("one")}).headers["x-ratelimit-remaining-requests"] == "0"
    with azure(provider) as client, pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gpt-4o-prod", messages=user("two"))
    response = limited.value.response
    assert 25_000 < int(response.headers["retry-after-ms"]) <= 30_000
    assert response.headers["retry-after"] and response.headers["x-ratelimit-remaining-requests"] == "0"
    error = response.json()["error"]
    assert error["code"] == "429"
    assert f"ChatCompletions_Create Operation under Azure OpenAI API version {VERSION}" in error["message"]
    assert "call rate limit" in error["message"]
    assert provider.stats()["by_route"]["azure.chat"]["rate_limited"] == 1


def test_embeddings_on_a_deployment(provider):
    with azure(provider) as client:
        answer = client.embeddings.create(model="embed-prod", input=["first", "second"], dimensions=8)
    assert [d.index for d in answer.data] == [0, 1]
    assert answer.data[1].embedding == pytest.approx(list(embedding_vector("second", 8)), abs=1e-6)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == 4
    assert provider.stats()["by_route"]["azure.embeddings"]["completed"] == 1


def test_the_v1_surface_needs_no_api_version(provider):
    with openai.OpenAI(base_url=provider.root_url + "/openai/v1", api_key="azure-key", max_retries=0) as client:
        completion = client.chat.completions.create(model="gpt-4o-prod", messages=user("hi"))
        vectors = client.embeddings.create(model="embed-prod", input="hi", encoding_format="float")
    assert completion.choices[0].message.content == "Mock reply to: hi"
    assert len(vectors.data[0].embedding) == 1536
    no_model = post(provider, "/openai/v1/chat/completions", {"messages": user("hi")}, params={})
    assert no_model.status_code == 400 and "model" in no_model.json()["error"]["message"]
    routes = provider.stats()["by_route"]
    assert routes["azure.v1.chat"]["requests"] == 2 and routes["azure.v1.embeddings"]["completed"] == 1


def test_openai_embeddings_route_answers_base64_and_floats_alike(provider):
    with openai.OpenAI(base_url=provider.base_url, api_key="sk-x", max_retries=0) as client:
        default = client.embeddings.create(model="text-embedding-3-small", input=["a b c", "a b c"])
    raw = httpx.post(provider.base_url + "/embeddings", timeout=10, json={
        "model": "m", "input": "a b c", "encoding_format": "base64", "dimensions": 4}).json()
    packed = array("f", base64.b64decode(raw["data"][0]["embedding"]))
    assert list(packed) == list(embedding_vector("a b c", 4))
    assert default.data[0].embedding == default.data[1].embedding  # equal inputs, equal vectors
    assert sum(v * v for v in default.data[0].embedding) == pytest.approx(1.0, abs=1e-4)

    for bad in ({"model": "m"}, {"model": "m", "input": []}, {"model": "m", "input": ["ok", ""]},
                {"model": "m", "input": "x", "dimensions": 0}):
        refused = httpx.post(provider.base_url + "/embeddings", json=bad, timeout=10)
        assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"
    scripted = httpx.post(provider.base_url + "/embeddings", json={"model": "m", "input": ["x [[mock:status=503]]"]},
                          timeout=10)
    assert scripted.status_code == 503
    stats = provider.stats()["by_route"]["openai.embeddings"]
    assert stats["completed"] == 2 and stats["by_status"] == {"200": 2, "400": 4, "503": 1}
