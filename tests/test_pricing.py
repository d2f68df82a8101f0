"""Prices: deployment overrides, the shipped table, mock, unknown models, cached tokens."""

from __future__ import annotations

import pytest

from dispatcher.config.loader import parse_config
from dispatcher.deployments import build_deployments
from dispatcher.pricing import Price, price_for, price_table, price_table_date, table_price
from dispatcher.providers.base import Usage


def _deployment(model: str, **params):
    config = parse_config({"model_list": [{"model_name": "g", "litellm_params": {"model": model, **params}}]})
    return build_deployments(config).by_id["g#0"]


def test_table_is_loaded():
    table = price_table()
    assert "gpt-4o-mini" in table
    assert all(p.input_per_token >= 0 and p.output_per_token >= 0 for p in table.values())
    assert price_table_date()


def test_table_price_for_openai_model():
    assert price_for(_deployment("openai/gpt-4o-mini")) == price_table()["gpt-4o-mini"]


def test_deployment_override_beats_table():
    price = price_for(
        _deployment("openai/gpt-4o-mini", input_cost_per_token=1e-3, output_cost_per_token=2e-3)
    )
    assert price == Price(1e-3, 2e-3)
    assert price != price_table()["gpt-4o-mini"]


def test_mock_is_free():
    price = price_for(_deployment("mock/echo"))
    assert price is not None
    assert price.cost(Usage(1000, 1000, 2000)) == 0.0


def test_mock_with_configured_price_is_charged():
    price = price_for(_deployment("mock/echo", input_cost_per_token=1e-6, output_cost_per_token=1e-6))
    assert price.cost(Usage(10, 10, 20)) == pytest.approx(2e-5)


def test_unknown_model_is_none():
    assert price_for(_deployment("openai/model-that-does-not-exist")) is None
    assert price_for(_deployment("hosted_vllm/my-llama", api_base="http://localhost:8000/v1")) is None


def test_dated_snapshot_costs_its_family():
    assert table_price("openai", "gpt-4o-2024-08-06") == price_table()["gpt-4o"]
    assert table_price("openai", "gpt-4o-mini-2024-07-18") == price_table()["gpt-4o-mini"]


def test_gateway_names():
    assert table_price("openrouter", "openai/gpt-4o") == price_table()["gpt-4o"]
    assert table_price("openrouter", "anthropic/claude-3.5-sonnet") == price_table()["claude-3-5-sonnet"]


def test_provider_qualified_name_first():
    name = next(n for n in price_table() if n.startswith("groq/"))
    model = name.split("/", 1)[1]
    assert table_price("groq", model) == price_table()[name]


def test_cost_plain():
    price = Price(input_per_token=2e-6, output_per_token=8e-6)
    assert price.cost(Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500)) == pytest.approx(
        1000 * 2e-6 + 500 * 8e-6
    )


def test_cost_cached_tokens_at_cached_price():
    price = Price(input_per_token=2e-6, output_per_token=8e-6, cached_input_per_token=5e-7)
    usage = Usage(prompt_tokens=1000, completion_tokens=100, total_tokens=1100, cached_tokens=600)
    assert price.cost(usage) == pytest.approx(400 * 2e-6 + 600 * 5e-7 + 100 * 8e-6)


def test_cost_cached_tokens_without_cached_price_pay_full_input():
    price = Price(input_per_token=2e-6, output_per_token=8e-6)
    usage = Usage(prompt_tokens=1000, completion_tokens=0, total_tokens=1000, cached_tokens=600)
    assert price.cost(usage) == pytest.approx(1000 * 2e-6)


def test_table_cached_price_applies():
    price = price_table()["gpt-4o-mini"]
    assert price.cached_input_per_token is not None
    usage = Usage(prompt_tokens=100, completion_tokens=0, total_tokens=100, cached_tokens=100)
    assert price.cost(usage) == pytest.approx(100 * price.cached_input_per_token)
    assert price.cost(usage) < Price(price.input_per_token, price.output_per_token).cost(usage)


@pytest.mark.parametrize("model, family", [
    ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ("gpt-4-0613", "gpt-4"),
    ("gpt-4-0314", "gpt-4"),
    ("gpt-4-32k-0613", "gpt-4-32k"),
    ("gpt-3.5-turbo-16k-0613", "gpt-3.5-turbo-16k"),
])
def test_month_day_snapshot_costs_its_own_family(model, family):
    assert table_price("openai", model) == price_table()[family]


def test_snapshots_priced_apart_from_their_family_keep_their_price():
    # gpt-3.5-turbo-1106 costs twice gpt-3.5-turbo's input price; gpt-4o's first snapshot twice gpt-4o's.
    assert table_price("openai", "gpt-3.5-turbo-1106") == Price(1e-6, 2e-6)
    assert table_price("openai", "gpt-4o-2024-05-13") == Price(5e-6, 1.5e-5)
    assert table_price("openai", "gpt-4-1106-preview") == price_table()["gpt-4-turbo"]


def test_a_suffix_never_lends_another_family_its_price():
    assert table_price("openai", "gpt-4-0613") != price_table()["gpt-4-turbo"]
    assert table_price("mistral", "mistral-small-2503") is None  # not mistral-small-latest
    assert table_price("openai", "my-model-0613") is None


def test_bare_model_name_in_config_is_priced_as_openai():
    assert price_for(_deployment("gpt-3.5-turbo-0125")) == price_table()["gpt-3.5-turbo"]


def test_claude_cache_writes_and_reads_have_their_own_prices():
    price = price_for(_deployment("anthropic/claude-sonnet-4-5-20250929"))
    assert price == Price(3e-6, 1.5e-5, cached_input_per_token=3e-7, cache_write_per_token=3.75e-6)
    # prompt_tokens counts fresh input (200), cache reads (5000) and cache writes (1000)
    usage = Usage(prompt_tokens=6200, completion_tokens=100, total_tokens=6300, cached_tokens=5000,
                  cache_creation_tokens=1000)
    assert price.cost(usage) == pytest.approx(200 * 3e-6 + 5000 * 3e-7 + 1000 * 3.75e-6 + 100 * 1.5e-5)


def test_cache_writes_without_a_write_price_pay_the_input_price():
    price = Price(input_per_token=2e-6, output_per_token=8e-6, cached_input_per_token=5e-7)
    usage = Usage(prompt_tokens=1000, completion_tokens=0, total_tokens=1000, cached_tokens=600,
                  cache_creation_tokens=300)
    assert price.cost(usage) == pytest.approx(400 * 2e-6 + 600 * 5e-7)


@pytest.mark.parametrize("model, per_mtok", [
    ("claude-opus-4-5-20251101", (5.0, 6.25, 0.5, 25.0)),
    ("claude-opus-4-20250514", (15.0, 18.75, 1.5, 75.0)),
    ("claude-haiku-4-5-20251001", (1.0, 1.25, 0.1, 5.0)),
    ("claude-3-5-haiku-20241022", (0.8, 1.0, 0.08, 4.0)),
    ("claude-opus-5-5", (4.0, 5.0, 0.2, 20.0)),
    ("claude-sonnet-5", (2.0, 2.5, 0.2, 10.0)),
])
def test_claude_prices_by_model(model, per_mtok):
    price = table_price("anthropic", model)
    input_, write, read, output = (value / 1e6 for value in per_mtok)
    assert price.input_per_token == pytest.approx(input_)
    assert price.cache_write_per_token == pytest.approx(write)
    assert price.cached_input_per_token == pytest.approx(read)
    assert price.output_per_token == pytest.approx(output)


def test_claude_with_configured_input_price_has_no_table_cache_prices():
    price = price_for(_deployment("anthropic/claude-sonnet-4-5", input_cost_per_token=1e-6))
    assert price == Price(1e-6, 1.5e-5)


def test_openai_prices_have_no_cache_write_price():
    assert all(price_table()[name].cache_write_per_token is None for name in ("gpt-4o", "gpt-4o-mini"))


def test_an_azure_deployment_is_priced_by_its_model_info_base_model():
    config = parse_config({"model_list": [
        {"model_name": "chat", "litellm_params": {"model": "azure/prod-chat-2", "api_base": "https://r.openai.azure.com",
                                                  "api_key": "k"}},
        {"model_name": "chat", "litellm_params": {"model": "azure/prod-chat-3", "api_base": "https://r.openai.azure.com",
                                                  "api_key": "k"}, "model_info": {"base_model": "azure/gpt-4o-mini"}},
    ]})
    unnamed, named = build_deployments(config).by_group["chat"]
    assert price_for(unnamed) is None  # a deployment name says nothing of the model: unknown, never free
    assert price_for(named) == table_price("openai", "gpt-4o-mini")
