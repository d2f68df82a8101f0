"""An embeddings batch end to end: the engine in this process on SQLite, against the HTTP mock
provider (OpenAI's and Azure's embeddings routes) and the built-in mock."""

from __future__ import annotations

import pytest

from dispatcher import Client
from dispatcher.pricing import EMBEDDING_PRICES_PER_MTOK
from tests.engine.test_engine import run_engine_until_done
from tests.helpers.sql import query

AZURE_INPUT_PRICE = 1e-7  # per token, set in the config: the table cannot know a deployment name


def _line(custom_id: str, group: str, given) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
            "body": {"model": group, "input": given}}


@pytest.fixture
def client(write_config, sqlite_url, mock_provider, monkeypatch):
    for name in ("AZURE_API_KEY", "AZURE_API_BASE", "AZURE_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    config = write_config([
        ("embed", {"model": "openai/text-embedding-3-small", "api_base": mock_provider.base_url,
                   "api_key": "sk-test-key-0000"}),
        ("embed-azure", {"model": "azure/embed-prod", "api_base": mock_provider.root_url,
                         "api_key": "azure-key", "api_version": "2024-10-21",
                         "input_cost_per_token": AZURE_INPUT_PRICE, "output_cost_per_token": 0.0}),
        ("embed-mock", {"model": "mock/embedder"}),
    ], settings={"database_url": sqlite_url})
    with Client(config) as client:
        yield client


def test_an_embeddings_batch_runs_end_to_end_with_input_only_usage_and_cost(client, sqlite_url, mock_provider):
    lines = [
        _line("openai-one", "embed", "The food was delicious"),
        _line("openai-many", "embed", ["first text", "second text", "third text"]),
        _line("azure-one", "embed-azure", "Azure embeds this"),
        _line("mock-one", "embed-mock", [[1212, 318, 257]]),
    ]
    batch = client.submit(lines)
    run_engine_until_done(client, batch.batch_id)

    results = {line["custom_id"]: line for line in client.results(batch.batch_id)}
    assert list(results) == ["openai-one", "openai-many", "azure-one", "mock-one"]
    for custom_id, inputs in (("openai-one", 1), ("openai-many", 3), ("azure-one", 1), ("mock-one", 1)):
        response = results[custom_id]["response"]
        assert response["status_code"] == 200
        body = response["body"]
        assert body["object"] == "list"
        assert [item["index"] for item in body["data"]] == list(range(inputs))
        assert all(item["object"] == "embedding" and isinstance(item["embedding"], list)
                   and all(isinstance(x, float) for x in item["embedding"]) for item in body["data"])
        assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    routes = mock_provider.stats()["by_route"]
    assert routes["openai.embeddings"]["completed"] == 2 and routes["azure.embeddings"]["completed"] == 1
    assert "openai.chat" not in routes

    prompt = {cid: results[cid]["response"]["body"]["usage"]["prompt_tokens"] for cid in results}
    info = client.status(batch.batch_id)
    assert (info.succeeded, info.failed) == (4, 0)
    assert info.prompt_tokens == sum(prompt.values()) == info.total_tokens
    assert info.completion_tokens == 0 and info.cost_unknown == 0
    openai_price = EMBEDDING_PRICES_PER_MTOK["text-embedding-3-small"] / 1e6
    expected = (prompt["openai-one"] + prompt["openai-many"]) * openai_price + prompt["azure-one"] * AZURE_INPUT_PRICE
    assert info.cost == pytest.approx(expected)

    [stored] = query(sqlite_url, "SELECT endpoint FROM batches WHERE id = :id", id=batch.batch_id)
    assert stored.endpoint == "/v1/embeddings"
    jobs = query(sqlite_url, "SELECT endpoint, est_completion_tokens, completion_tokens FROM jobs "
                             "WHERE batch_id = :id", id=batch.batch_id)
    assert {(j.endpoint, j.est_completion_tokens, j.completion_tokens) for j in jobs} == {("/v1/embeddings", 0, 0)}


def test_a_chat_batch_stores_no_endpoint_on_its_jobs(client, sqlite_url):
    """Chat jobs keep the column NULL (the claim maps it to the chat call)."""
    batch = client.submit([{"custom_id": "c", "model": "embed-mock",
                            "messages": [{"role": "user", "content": "hi"}]}])
    run_engine_until_done(client, batch.batch_id)
    [job] = query(sqlite_url, "SELECT endpoint, status FROM jobs WHERE batch_id = :id", id=batch.batch_id)
    assert (job.endpoint, job.status) == (None, "succeeded")
    [stored] = query(sqlite_url, "SELECT endpoint FROM batches WHERE id = :id", id=batch.batch_id)
    assert stored.endpoint == "/v1/chat/completions"
