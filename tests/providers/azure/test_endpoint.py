"""Azure OpenAI URLs, API versions and credential headers, built from config and environment."""

from __future__ import annotations

import pytest

from dispatcher.config.loader import parse_config
from dispatcher.config.secrets import MissingSecretError
from dispatcher.deployments import build_deployments
from dispatcher.providers import errors as pe
from dispatcher.providers.azure import endpoint
from dispatcher.providers.azure.credentials import AzureCredentials


def _deployment(**params):
    params.setdefault("model", "azure/chat-prod")
    params.setdefault("api_base", "https://myres.openai.azure.com/")
    config = parse_config({"model_list": [{"model_name": "m", "litellm_params": params}]})
    return build_deployments(config).by_id["m#0"]


def test_dated_surface_names_the_deployment_and_the_version():
    url = endpoint.chat_completions_url("https://myres.openai.azure.com", "chat-prod", "2024-10-21")
    assert url == ("https://myres.openai.azure.com/openai/deployments/chat-prod/chat/completions"
                   "?api-version=2024-10-21")


def test_v1_surface_has_no_version_and_no_deployment_in_the_path():
    url = endpoint.chat_completions_url("https://myres.openai.azure.com", "chat-prod", "v1")
    assert url == "https://myres.openai.azure.com/openai/v1/chat/completions"


@pytest.mark.parametrize("api_base", [
    "https://myres.openai.azure.com",
    "https://myres.openai.azure.com/",
    "https://myres.openai.azure.com/openai",
    "https://myres.openai.azure.com/openai/v1/",
])
def test_sdk_style_bases_name_the_same_resource(api_base):
    assert endpoint.resource_endpoint(api_base) == "https://myres.openai.azure.com"


def test_a_gateway_path_before_the_resource_is_kept():
    url = endpoint.chat_completions_url("https://gw.example.com/team-a", "gpt-4o", "2024-06-01")
    assert url.startswith("https://gw.example.com/team-a/openai/deployments/gpt-4o/")


def test_deployment_and_version_are_quoted_into_the_url():
    url = endpoint.chat_completions_url("https://r.openai.azure.com", "my deploy/x", "2024-10-01-preview")
    assert "/deployments/my%20deploy%2Fx/chat/completions?api-version=2024-10-01-preview" in url


def test_api_version_from_config_then_environment_then_the_ga_default(monkeypatch):
    assert endpoint.api_version(None) == endpoint.DEFAULT_API_VERSION == "2024-10-21"
    monkeypatch.setenv("AZURE_API_VERSION", "2024-06-01")
    assert endpoint.api_version(None) == "2024-06-01"
    assert endpoint.api_version("2025-01-01-preview") == "2025-01-01-preview"


def test_unquoted_yaml_date_is_read_as_the_version_string():
    import datetime

    assert _deployment(api_version=datetime.date(2024, 2, 1)).api_version == "2024-02-01"


def test_config_api_key_goes_in_the_api_key_header(monkeypatch):
    monkeypatch.setenv("AZURE_API_KEY", "env-key-not-used")
    credentials = AzureCredentials(_deployment(api_key="cfg-key-1234", azure_ad_token="tok-unused"))
    assert credentials.header() == (b"api-key", b"cfg-key-1234")


def test_config_ad_token_is_sent_as_bearer_before_any_environment_key(monkeypatch):
    monkeypatch.setenv("AZURE_API_KEY", "env-key-not-used")
    monkeypatch.setenv("LLMD_TEST_AZURE_TOKEN", "entra-token-1")
    credentials = AzureCredentials(_deployment(azure_ad_token="os.environ/LLMD_TEST_AZURE_TOKEN"))
    assert credentials.header() == (b"Authorization", b"Bearer entra-token-1")


def test_environment_is_read_at_call_time_in_litellms_order(monkeypatch):
    credentials = AzureCredentials(_deployment())
    monkeypatch.setenv("AZURE_AD_TOKEN", "env-token")
    assert credentials.header() == (b"Authorization", b"Bearer env-token")
    monkeypatch.setenv("AZURE_API_KEY", "env-key-2")
    assert credentials.header() == (b"api-key", b"env-key-2")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key-1")
    assert credentials.header() == (b"api-key", b"env-key-1")


def test_no_credentials_anywhere_names_every_way_to_give_them():
    with pytest.raises(pe.MissingCredentialsError) as info:
        AzureCredentials(_deployment()).header()
    message = str(info.value)
    assert "m#0" in message
    for name in ("api_key", "azure_ad_token", "AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_AD_TOKEN"):
        assert name in message
    assert not info.value.request_sent


def test_a_named_variable_that_is_unset_names_it():
    credentials = AzureCredentials(_deployment(api_key="os.environ/AZURE_API_KEY"))
    with pytest.raises(MissingSecretError, match="AZURE_API_KEY"):
        credentials.header()
