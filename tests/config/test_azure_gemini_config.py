"""LiteLLM configs with azure/ and gemini/ entries load and build their adapters; secrets stay hidden."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from dispatcher.config.loader import CONFIG_ENV, DATABASE_URL_ENV, REDIS_URL_ENV, load_config, parse_config
from dispatcher.deployments import build_deployments
from dispatcher.errors import ConfigError
from dispatcher.providers import errors as pe
from dispatcher.providers.provider_set import ProviderSet
from tests.providers.scripted_server import scripted_server  # noqa: F401 (fixture)

# The shape of LiteLLM's azure_config.yaml and its Gemini docs: keys by os.environ/, an
# unquoted date as api_version, api_base from the environment.
LITELLM_CONFIG = """
model_list:
  - model_name: gpt-4-team1
    litellm_params:
      model: azure/chat-v-2
      api_base: https://resource-one.openai.azure.com/
      api_version: 2023-05-15
      api_key: os.environ/AZURE_API_KEY
      tpm: 20_000
      timeout: 5
  - model_name: gpt-4-team2
    litellm_params:
      model: azure/gpt-4
      api_key: os.environ/AZURE_API_KEY
      api_base: os.environ/AZURE_API_BASE
      api_version: "2024-10-21"
  - model_name: gpt-4o-v1
    litellm_params:
      model: azure/gpt-4o
      api_version: v1
      azure_ad_token: os.environ/AZURE_AD_TOKEN
  - model_name: gemini-flash
    litellm_params:
      model: gemini/gemini-2.0-flash
      api_key: os.environ/GEMINI_API_KEY
      rpm: 15
  - model_name: gemini-pro
    litellm_params:
      model: gemini-1.5-pro
router_settings:
  fallbacks: [{"gpt-4-team1": ["gemini-flash"]}]
  content_policy_fallbacks: [{"gpt-4-team2": ["gemini-pro"]}]
"""


@pytest.fixture(autouse=True)
def _environment(monkeypatch, tmp_path):
    for name in (CONFIG_ENV, REDIS_URL_ENV, DATABASE_URL_ENV, "AZURE_API_KEY", "AZURE_OPENAI_API_KEY",
                 "AZURE_AD_TOKEN", "AZURE_API_VERSION", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_API_BASE", "https://resource-two.openai.azure.com")
    monkeypatch.chdir(tmp_path)


def _load(tmp_path, text=LITELLM_CONFIG):
    path = tmp_path / "litellm.yaml"
    path.write_text(text)
    config, _ = load_config(path)
    return config


def test_litellm_config_with_azure_and_gemini_loads_whole(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    config = _load(tmp_path)
    deployments = build_deployments(config)
    assert {g: [d.adapter for d in m] for g, m in deployments.by_group.items()} == {
        "gpt-4-team1": ["azure"], "gpt-4-team2": ["azure"], "gpt-4o-v1": ["azure"],
        "gemini-flash": ["gemini"], "gemini-pro": ["gemini"],
    }
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "skipped" not in text and "not used" not in text  # api_version, azure_ad_token are read
    assert config.router_settings.content_policy_fallbacks == [{"gpt-4-team2": ["gemini-pro"]}]


def test_azure_settings_reach_the_deployment(tmp_path):
    deployments = build_deployments(_load(tmp_path))
    team1, team2, v1 = (deployments.group(g)[0] for g in ("gpt-4-team1", "gpt-4-team2", "gpt-4o-v1"))
    assert (team1.api_base, team1.api_version, team1.provider_model) == (
        "https://resource-one.openai.azure.com", "2023-05-15", "chat-v-2")
    assert team1.api_key.env_name == "AZURE_API_KEY" and team1.tpm == 20_000
    assert (team2.api_base, team2.api_version) == ("https://resource-two.openai.azure.com", "2024-10-21")
    assert v1.api_base == "https://resource-two.openai.azure.com"  # from AZURE_API_BASE
    assert (v1.api_version, v1.api_key, v1.azure_ad_token.env_name) == ("v1", None, "AZURE_AD_TOKEN")
    urls = {d.id: str(ProviderSet(deployments, 2).get(d.id)._url) for d in (team1, v1)}
    assert urls[team1.id].endswith("/openai/deployments/chat-v-2/chat/completions?api-version=2023-05-15")
    assert urls[v1.id] == "https://resource-two.openai.azure.com/openai/v1/chat/completions"


def test_gemini_settings_reach_the_deployment(tmp_path):
    deployments = build_deployments(_load(tmp_path))
    flash, pro = deployments.group("gemini-flash")[0], deployments.group("gemini-pro")[0]
    assert flash.api_base == pro.api_base == "https://generativelanguage.googleapis.com/v1beta/openai"
    assert flash.api_key.env_name == pro.api_key.env_name == "GEMINI_API_KEY"
    assert (flash.provider_model, pro.provider_model, flash.rpm) == ("gemini-2.0-flash", "gemini-1.5-pro", 15)


def test_azure_without_any_api_base_is_skipped_naming_the_variable(monkeypatch, caplog):
    monkeypatch.delenv("AZURE_API_BASE")
    caplog.set_level(logging.WARNING)
    raw = {"model_list": [
        {"model_name": "a", "litellm_params": {"model": "azure/gpt-4o"}},
        {"model_name": "b", "litellm_params": {"model": "gemini/gemini-2.0-flash"}},
    ]}
    config = parse_config(raw, source="t.yaml")
    assert [entry.model_name for entry in config.model_list] == ["b"]
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "model_list[0].litellm_params.api_base: required for provider 'azure' (or set AZURE_API_BASE)" in text


def test_oidc_token_references_are_refused_with_the_way_to_write_it():
    raw = {"model_list": [{"model_name": "a", "litellm_params": {
        "model": "azure/gpt-4o", "api_base": "https://r.openai.azure.com", "azure_ad_token": "oidc/github/x"}}]}
    with pytest.raises(ConfigError, match=r"azure_ad_token: oidc/ token references are not supported"):
        parse_config(raw, source="t.yaml")


def _call(config, deployment_id: str):
    providers = ProviderSet(build_deployments(config), max_in_flight=2)

    async def main():
        try:
            body = json.dumps({"model": "x", "messages": [{"role": "user", "content": "hi"}]}).encode()
            return await providers.get(deployment_id).complete(body, timeout=5.0)
        finally:
            await providers.aclose()

    return asyncio.run(main())


def test_secrets_never_appear_in_errors(tmp_path, scripted_server, monkeypatch):
    azure_key, token, gemini_key = "azure-key-9f8e7d6c", "eyJ0eXAiOiJKV1Qi-entra-token", "AIzaSy-gemini-key-4242"
    monkeypatch.setenv("AZURE_API_KEY", azure_key)
    monkeypatch.setenv("GEMINI_API_KEY", gemini_key)
    config = parse_config({"model_list": [
        {"model_name": "az", "litellm_params": {"model": "azure/gpt-4o", "api_base": scripted_server.url,
                                                "api_key": "os.environ/AZURE_API_KEY"}},
        {"model_name": "tok", "litellm_params": {"model": "azure/gpt-4o", "api_base": scripted_server.url,
                                                 "azure_ad_token": token}},
        {"model_name": "gem", "litellm_params": {"model": "gemini/gemini-2.0-flash",
                                                 "api_base": scripted_server.url,
                                                 "api_key": "os.environ/GEMINI_API_KEY"}},
    ]})
    assert token not in repr(build_deployments(config).by_id["tok#0"].azure_ad_token)
    for deployment_id, secret in (("az#0", azure_key), ("tok#0", token), ("gem#0", gemini_key)):
        # A provider that quotes back the credential it was sent, bare and in a header's form.
        echo = f"bad credentials {secret}; Authorization: Bearer {secret}"
        scripted_server.answer(401, [{"error": {"code": 401, "status": "UNAUTHENTICATED", "message": echo}}])
        with pytest.raises(pe.AuthenticationError) as info:
            _call(config, deployment_id)
        shown = f"{info.value} {info.value.message} {info.value.body}"
        assert secret not in shown and "bad credentials ***" in shown
    sent = [request.headers.get("api-key") or request.headers.get("authorization") for request in scripted_server.requests]
    assert sent == [azure_key, f"Bearer {token}", f"Bearer {gemini_key}"]


def test_missing_azure_key_error_names_the_variable_not_a_value(tmp_path):
    config = _load(tmp_path)
    with pytest.raises(pe.MissingCredentialsError) as info:
        _call(config, "gpt-4-team1#0")
    assert "AZURE_API_KEY" in str(info.value) and "model_list[0].litellm_params.api_key" in str(info.value)
