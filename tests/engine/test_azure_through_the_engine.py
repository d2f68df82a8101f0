"""Azure OpenAI deployments (``azure/``) run by the engine against the HTTP mock provider's
Azure routes (deployment URLs with ``api-version``, the ``api-key`` header): answers, and a
content-filter refusal moving the job to the group named in content_policy_fallbacks. In this
process, on SQLite, on the in-process backends."""

from __future__ import annotations

from dispatcher import Client
from tests.conftest import chat_lines, openai_deployment
from tests.engine.test_engine import run_engine_until_done
from tests.helpers.sql import CALLS, query

MOCK_KEY = "azure-mock-key"


def azure(provider, **extra) -> dict:
    return {"model": "azure/chat-deployment", "api_base": provider.root_url, "api_key": MOCK_KEY,
            "api_version": "2024-10-21", **extra}


def test_azure_deployments_answer_through_their_deployment_url(write_config, sqlite_url, start_mock_provider):
    provider = start_mock_provider(api_key=MOCK_KEY)
    config = write_config([("gpt", azure(provider))], settings={"database_url": sqlite_url})
    with Client(config) as client:
        batch = client.submit(chat_lines(3, model="gpt"))
        run_engine_until_done(client, batch.batch_id)
        results = list(client.results(batch.batch_id))
    assert [r["response"]["body"]["choices"][0]["message"]["content"] for r in results] == [
        f"Mock reply to: job prompt number {i}" for i in range(3)]
    route = provider.stats()["by_route"]["azure.chat"]
    assert route["requests"] == 3 and route["duplicates"] == 0


def test_an_azure_content_filter_refusal_falls_back_to_another_group(write_config, sqlite_url, start_mock_provider):
    provider = start_mock_provider(api_key=MOCK_KEY)
    other = start_mock_provider()
    config = write_config(
        [("gpt", azure(provider)), ("lenient", openai_deployment(other))],
        router={"content_policy_fallbacks": [{"gpt": ["lenient"]}]},
        settings={"database_url": sqlite_url},
    )
    line = {"custom_id": "filtered", "model": "gpt", "messages": [{"role": "user", "content": "trigger-content-filter"}]}
    with Client(config) as client:
        batch = client.submit([line])
        run_engine_until_done(client, batch.batch_id)
        results = list(client.results(batch.batch_id))
    assert results[0]["response"]["body"]["choices"][0]["message"]["content"] == "Mock reply to: trigger-content-filter"
    assert provider.stats()["by_route"]["azure.chat"]["by_status"] == {"400": 1}  # refused once, not retried
    attempts = query(sqlite_url, f"SELECT deployment_id FROM {CALLS} AS a ORDER BY ended_at")
    assert [a.deployment_id for a in attempts] == ["gpt#0", "lenient#0"]
