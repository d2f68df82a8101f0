"""``embed`` of each adapter: the URL it posts to, what it reads back, and who refuses.

Answers follow OpenAI's embeddings reference (``object: list``, ``data[].embedding``,
``usage`` with prompt and total tokens only).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import struct

import pytest

from dispatcher.config.loader import parse_config
from dispatcher.deployments import build_deployments
from dispatcher.providers import errors as pe
from dispatcher.providers.mock.adapter import MockProvider
from dispatcher.providers.provider_set import ProviderSet
from tests.providers.scripted_server import scripted_server  # noqa: F401 (fixture)

BODY = json.dumps({"model": "text-embedding-3-small", "input": ["a cat", "a dog"]}).encode()
ANSWER = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]},
             {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 4, "total_tokens": 4},
}


@pytest.fixture(autouse=True)
def _no_azure_environment(monkeypatch):
    for name in ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_AD_TOKEN", "AZURE_API_BASE", "AZURE_API_VERSION"):
        monkeypatch.delenv(name, raising=False)


def _embed(params: dict, body: bytes = BODY):
    config = parse_config({"model_list": [{"model_name": "m", "litellm_params": params}]})
    providers = ProviderSet(build_deployments(config), max_in_flight=4)

    async def main():
        try:
            return await providers.get("m#0").embed(body, timeout=5.0)
        finally:
            await providers.aclose()

    return asyncio.run(main())


@pytest.mark.parametrize(("params", "path"), [
    ({"model": "openai/text-embedding-3-small", "api_key": "sk-test", "api_base": "{url}/v1"}, "/v1/embeddings"),
    ({"model": "gemini/gemini-embedding-001", "api_key": "g-test", "api_base": "{url}/v1beta/openai"},
     "/v1beta/openai/embeddings"),
    ({"model": "azure/embed-prod", "api_key": "az-test", "api_base": "{url}", "api_version": "2024-10-21"},
     "/openai/deployments/embed-prod/embeddings?api-version=2024-10-21"),
    ({"model": "azure/embed-prod", "api_key": "az-test", "api_base": "{url}/openai/v1", "api_version": "v1"},
     "/openai/v1/embeddings"),
    ({"model": "hosted_vllm/bge-m3", "api_base": "{url}/v1"}, "/v1/embeddings"),
])
def test_openai_compatible_adapters_post_to_their_embeddings_path(scripted_server, params, path):
    scripted_server.answer(200, ANSWER, {"x-request-id": "req-e1"})
    params = {key: value.format(url=scripted_server.url) for key, value in params.items()}
    completion = _embed(params)
    [request] = scripted_server.requests
    assert request.path == path
    assert request.body == BODY  # passed through as it is
    assert json.loads(completion.body) == ANSWER
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (4, 0, 4)
    assert completion.request_id == "req-e1"


def test_an_answer_without_data_is_an_invalid_response(scripted_server):
    scripted_server.answer(200, {"object": "list"})
    with pytest.raises(pe.InvalidResponseError, match="not an embeddings list"):
        _embed({"model": "openai/text-embedding-3-small", "api_key": "sk-test", "api_base": scripted_server.url})


def test_an_error_answer_maps_like_chat(scripted_server):
    scripted_server.answer(400, {"error": {"message": "This model's maximum context length is 8192 tokens",
                                           "type": "invalid_request_error", "code": None}})
    with pytest.raises(pe.BadRequestError):
        _embed({"model": "openai/text-embedding-3-small", "api_key": "sk-test", "api_base": scripted_server.url})


def test_anthropic_refuses_embeddings_without_sending(scripted_server):
    with pytest.raises(pe.BadRequestError, match="Anthropic has no embeddings API") as refused:
        _embed({"model": "anthropic/claude-sonnet-4-5", "api_key": "sk-ant", "api_base": scripted_server.url})
    assert refused.value.request_sent is False
    assert scripted_server.requests == []


def _mock(**params) -> MockProvider:
    params.setdefault("model", "mock/embedder")
    config = parse_config({"model_list": [{"model_name": "m", "litellm_params": params}]})
    return MockProvider(build_deployments(config).by_id["m#0"], rng=random.Random(3))


def test_the_built_in_mock_gives_deterministic_unit_vectors():
    body = json.dumps({"model": "embedder", "input": ["same", "other", "same"], "dimensions": 8}).encode()
    completion = asyncio.run(_mock().embed(body, 5.0))
    answer = json.loads(completion.body)
    assert answer["object"] == "list" and answer["model"] == "embedder"
    vectors = [item["embedding"] for item in answer["data"]]
    assert [item["index"] for item in answer["data"]] == [0, 1, 2]
    assert vectors[0] == vectors[2] != vectors[1]
    assert all(len(v) == 8 and math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    assert answer["usage"] == {"prompt_tokens": completion.usage.prompt_tokens,
                               "total_tokens": completion.usage.prompt_tokens}
    assert completion.usage.completion_tokens == 0
    again = asyncio.run(_mock().embed(body, 5.0))
    assert json.loads(again.body)["data"] == answer["data"]


def test_the_built_in_mock_encodes_base64_as_openai_does():
    plain = json.loads(asyncio.run(_mock().embed(
        json.dumps({"input": "hi", "dimensions": 4}).encode(), 5.0)).body)
    packed = json.loads(asyncio.run(_mock().embed(
        json.dumps({"input": "hi", "dimensions": 4, "encoding_format": "base64"}).encode(), 5.0)).body)
    decoded = struct.unpack("<4f", base64.b64decode(packed["data"][0]["embedding"]))
    assert decoded == pytest.approx(plain["data"][0]["embedding"])


def test_the_built_in_mock_refuses_what_openai_refuses():
    with pytest.raises(pe.BadRequestError, match="body.input"):
        asyncio.run(_mock().embed(json.dumps({"input": []}).encode(), 5.0))
