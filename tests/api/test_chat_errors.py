"""POST /v1/chat/completions when it cannot answer with a completion, seen through the openai
SDK: the HTTP status (so the SDK's exception class), the error body, and no SDK retry."""

from __future__ import annotations

import openai
import pytest
import yaml

from tests.api.conftest import start_api, write_api_config
from tests.conftest import openai_deployment
from tests.helpers.mock_provider import MockProvider

pytestmark = pytest.mark.slow

RATE_LIMITED = "[[mock:status=429]]"  # the mock provider answers this prompt 429, every time
RETRIES = {"limited": 2, "unretried": 0}  # RateLimitErrorRetries of each group


@pytest.fixture(scope="module")
def provider():
    with MockProvider() as running:
        yield running


@pytest.fixture(scope="module")
def errors_api(tmp_path_factory, provider):
    """``limited`` and ``unretried``: the HTTP mock provider, rate limits retried twice (quickly)
    and never; ``priced``: the built-in mock at 0.001 USD a token."""
    folder = tmp_path_factory.mktemp("chat-errors")
    priced = {"model": "mock/echo", "mock_latency_ms": 0, "input_cost_per_token": 0.001,
              "output_cost_per_token": 0.001}
    config = write_api_config(folder, database_url=f"sqlite:///{folder / 'api.db'}",
                              deployments=[("limited", openai_deployment(provider)),
                                           ("unretried", openai_deployment(provider)), ("priced", priced)],
                              settings={"default_model": "priced", "retry_backoff_base": 0.05})
    document = yaml.safe_load(config.read_text())
    document["router_settings"]["model_group_retry_policy"] = {
        group: {"RateLimitErrorRetries": retries} for group, retries in RETRIES.items()}
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    api = start_api(config)
    yield api
    api.close()


def test_a_provider_that_keeps_answering_429_gives_the_sdk_a_rate_limit_error(errors_api, provider):
    provider.reset()
    sdk = errors_api.sdk(max_retries=2)  # the answer says not to: the queue has retried already
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="limited", messages=[{"role": "user", "content": f"hi {RATE_LIMITED}"}])
    error = limited.value
    assert error.status_code == 429
    # The provider's own OpenAI-shaped error, passed on.
    assert error.body == {"message": "mock error 429", "type": "mock_error", "param": None, "code": None}
    assert error.response.headers["x-should-retry"] == "false"
    assert provider.stats()["by_status"] == {"429": 1 + RETRIES["limited"]}  # every retry used, none by the SDK


def test_without_retries_the_first_429_is_the_answer(errors_api, provider):
    provider.reset()
    key = errors_api.sdk(errors_api.make_key("team"))
    with pytest.raises(openai.RateLimitError) as limited:
        key.chat.completions.create(model="unretried", messages=[{"role": "user", "content": f"once {RATE_LIMITED}"}])
    assert limited.value.type == "mock_error" and limited.value.message.startswith("Error code: 429")
    assert provider.stats()["by_status"] == {"429": 1}
    reply = key.chat.completions.create(model="unretried", messages=[{"role": "user", "content": "and now?"}])
    assert reply.choices[0].message.content == "Mock reply to: and now?"  # the group still serves


def test_a_completion_dearer_than_its_key_cost_ceiling_gets_429_budget_exceeded(errors_api):
    stored_before = len(errors_api.library().list_batches(limit=1000))
    key = errors_api.sdk(errors_api.make_key("capped", max_cost=1e-6))  # one call costs about 0.015 USD
    with pytest.raises(openai.RateLimitError) as refused:
        key.chat.completions.create(model="priced", messages=[{"role": "user", "content": "too dear"}])
    assert refused.value.code == "budget_exceeded"
    assert "cost ceiling of 1e-06 USD" in refused.value.message
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert len(errors_api.library().list_batches(limit=1000)) == stored_before  # refused before it was stored
    roomy = errors_api.sdk(errors_api.make_key("roomy", max_cost=5.0))  # the estimate: 1.03 USD (max_tokens 1024)
    reply = roomy.chat.completions.create(model="priced", messages=[{"role": "user", "content": "fits"}])
    assert reply.choices[0].message.content == "Mock reply to: fits"
