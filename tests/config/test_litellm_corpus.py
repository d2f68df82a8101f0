"""LiteLLM proxy configs, in the shapes of the LiteLLM repository's examples, load as they are.

Each file in litellm_corpus/ either loads (the entries we cannot serve are skipped and named
in one warning, the others work) or, when nothing could run, fails with every entry's
problem in one message.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dispatcher.config.loader import CONFIG_ENV, DATABASE_URL_ENV, REDIS_URL_ENV, load_config
from dispatcher.deployments import build_deployments
from dispatcher.errors import ConfigError

CORPUS = Path(__file__).parent / "litellm_corpus"

# file -> {group: number of deployments that run}
LOADS = {
    "proxy_server.yaml": {"gpt-35-end-user": 2, "gpt-3.5-turbo": 1, "gpt-3.5-turbo-large": 1, "fake-endpoint": 1},
    "azure_only.yaml": {"gpt-4-team1": 1, "gpt-4-team2": 1},
    "batch_misc.yaml": {"gpt-5-mini-end-user": 1},
    "vertex_gemini.yaml": {"fake-azure-endpoint": 1},
    "guardrails_tags.yaml": {"fake-openai-endpoint": 2, "llava-hf": 1},
    "anthropic_passthrough.yaml": {"fake-openai-endpoint": 1, "claude-sonnet": 1, "claude-haiku-alias": 1},
    "load_balancer.yaml": {"gpt-3.5-turbo": 3},
    "env_api_base.yaml": {"gpt-4": 1},
    "openai_compatible_vendors.yaml": {"llama-fast": 1, "deepseek": 1},
    "credentials_mcp.yaml": {"fast": 1, "smart": 1},
    "bedrock_router.yaml": {"chat": 1},
}
# file -> what the one error names
FAILS = {
    "ollama_aliases.yaml": ["model_list[0]", "model_list[1]", "model_list[2]", "provider 'ollama'",
                            "http://localhost:11434/v1"],
}


@pytest.fixture(autouse=True)
def _environment(monkeypatch, tmp_path):
    for name in (CONFIG_ENV, REDIS_URL_ENV, DATABASE_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    for name in ("LLMD_CORPUS_REDIS_HOST", "LLMD_CORPUS_REDIS_PASSWORD", "LLMD_CORPUS_REDIS_PORT"):
        monkeypatch.delenv(name, raising=False)  # set by load_balancer.yaml; monkeypatch undoes it
    monkeypatch.setenv("LLMD_CORPUS_FAKE_API_BASE", "https://fake-openai.example.com/v1")
    monkeypatch.chdir(tmp_path)


def test_every_corpus_file_has_an_expectation():
    assert sorted(p.name for p in CORPUS.glob("*.yaml")) == sorted([*LOADS, *FAILS])
    assert len(LOADS) + len(FAILS) >= 12


@pytest.mark.parametrize("name", sorted(LOADS))
def test_corpus_config_loads_and_serves_what_it_can(name):
    config, _ = load_config(CORPUS / name)
    deployments = build_deployments(config)
    assert {group: len(members) for group, members in deployments.by_group.items()} == LOADS[name]


@pytest.mark.parametrize("name", sorted(FAILS))
def test_corpus_config_with_nothing_runnable_names_every_problem_at_once(name):
    with pytest.raises(ConfigError) as info:
        load_config(CORPUS / name)
    message = str(info.value)
    assert "no model_list entry can be served" in message
    for expected in FAILS[name]:
        assert expected in message


def test_skipped_deployments_are_named_in_one_warning(caplog):
    caplog.set_level(logging.WARNING)
    load_config(CORPUS / "proxy_server.yaml")
    [skipped] = [r.getMessage() for r in caplog.records if "entries skipped" in r.getMessage()]
    assert "5 of 10 model_list entries skipped" in skipped
    for index, provider in ((4, "sagemaker"), (9, "text-completion-openai")):
        assert f"model_list[{index}].litellm_params.model: provider '{provider}' is not supported" in skipped
    assert "model_list[5].litellm_params.model: 'azure/' names no model after the provider prefix" in skipped
    assert "model_list[7]: wildcard routing" in skipped and "model_list[8]: wildcard routing" in skipped
    assert skipped.count("(supported provider prefixes: ") == 1 and "azure, dashscope, deepseek" in skipped


def test_litellm_only_sections_and_keys_are_named_not_refused(caplog):
    caplog.set_level(logging.WARNING)
    load_config(CORPUS / "credentials_mcp.yaml")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "callback_settings, credential_list, mcp_servers, search_tools not used" in text
    assert "general_settings (database_url) is LiteLLM proxy configuration" in text and "master_key" not in text
    assert "its database_url is the proxy's own database" in text
    assert "password" not in text


def test_fallbacks_in_litellm_settings_apply_like_router_settings():
    config, _ = load_config(CORPUS / "credentials_mcp.yaml")
    router = config.router_settings
    assert router.fallbacks == [{"smart": ["fast"]}]
    assert router.content_policy_fallbacks == [{"fast": ["smart"]}]
    assert router.default_fallbacks == ["fast"]
    smart = build_deployments(config).group("smart")[0]
    assert smart.body_defaults == {"temperature": 0.2, "max_tokens": 512}


def test_fallbacks_to_skipped_groups_are_dropped_with_a_warning(caplog):
    caplog.set_level(logging.WARNING)
    config, _ = load_config(CORPUS / "openai_compatible_vendors.yaml")
    assert config.router_settings.fallbacks == [{"llama-fast": ["deepseek"]}]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "router_settings.fallbacks[1].llama-fast 'sf-deepseek' (its deployments were skipped)" in text
    config, _ = load_config(CORPUS / "proxy_server.yaml")
    assert config.router_settings.context_window_fallbacks == [{"gpt-3.5-turbo": ["gpt-3.5-turbo-large"]}]
    assert (config.router_settings.num_retries, config.router_settings.timeout) == (5, 600)


def test_fallbacks_only_a_wildcard_would_serve_are_dropped():
    config, _ = load_config(CORPUS / "batch_misc.yaml")
    assert config.router_settings.context_window_fallbacks == []


def test_router_redis_settings_are_not_taken_as_ours(caplog):
    caplog.set_level(logging.WARNING)
    config, _ = load_config(CORPUS / "proxy_server.yaml")
    assert config.dispatcher_settings.redis_url is None  # still embedded: a fleet is a choice
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "redis_host, redis_port, redis_password are LiteLLM's router cache" in text
    assert "redis_url: redis://:PASSWORD@HOST:6379/0" in text
    config, _ = load_config(CORPUS / "bedrock_router.yaml")
    assert config.dispatcher_settings.redis_url is None
    assert "redis_url" not in (config.router_settings.model_extra or {})


def test_entry_level_limits_and_bare_names_of_load_balancer():
    config, _ = load_config(CORPUS / "load_balancer.yaml")
    first, second, gateway = build_deployments(config).group("gpt-3.5-turbo")
    assert (first.provider, first.provider_model, first.rpm, first.tpm) == ("openai", "gpt-3.5-turbo", 3, 20000)
    assert first.api_key.resolve() == "sk-literal-one"
    assert gateway.provider == "openrouter"


def test_generated_ids_do_not_move_when_a_sibling_is_skipped():
    config, _ = load_config(CORPUS / "guardrails_tags.yaml")
    assert list(build_deployments(config).by_id) == ["team-a-model", "team-b-model", "llava-hf#0"]
    config, _ = load_config(CORPUS / "load_balancer.yaml")
    assert list(build_deployments(config).by_id) == ["gpt-3.5-turbo#0", "gpt-3.5-turbo#1", "gpt-3.5-turbo#2"]


def test_api_base_from_an_unset_variable_fails_naming_it(monkeypatch):
    monkeypatch.delenv("LLMD_CORPUS_FAKE_API_BASE")
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params\.api_base: environment "
                                          r"variable LLMD_CORPUS_FAKE_API_BASE is not set"):
        load_config(CORPUS / "env_api_base.yaml")
