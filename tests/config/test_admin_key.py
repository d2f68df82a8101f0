"""The HTTP API's admin key: dispatcher_settings.api.admin_key, or LiteLLM's
general_settings.master_key when that is not given."""

from __future__ import annotations

import logging

import pytest

from dispatcher.config.loader import parse_config
from dispatcher.config.secrets import MissingSecretError
from dispatcher.errors import ConfigError

ENTRY = {"model_name": "chat", "litellm_params": {"model": "mock/echo"}}


def _config(admin_key: str | None = None, **general_settings):
    raw = {"model_list": [ENTRY]}
    if admin_key is not None:
        raw["dispatcher_settings"] = {"api": {"admin_key": admin_key}}
    if general_settings:
        raw["general_settings"] = general_settings
    return raw


def _error(raw) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="proxy.yaml")
    return str(info.value)


def test_a_master_key_from_the_environment_is_the_admin_key(monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-master-from-env-0001")
    secret = parse_config(_config(master_key="os.environ/LITELLM_MASTER_KEY")).admin_key()
    assert secret.where == "general_settings.master_key"
    assert secret.resolve() == "sk-master-from-env-0001"
    assert "sk-master" not in repr(secret)


def test_an_unset_master_key_variable_fails_when_resolved_naming_it(monkeypatch):
    monkeypatch.delenv("LITELLM_MASTER_KEY", raising=False)
    secret = parse_config(_config(master_key="os.environ/LITELLM_MASTER_KEY")).admin_key()
    with pytest.raises(MissingSecretError) as missing:
        secret.resolve()
    assert "LITELLM_MASTER_KEY" in str(missing.value) and "general_settings.master_key" in str(missing.value)


def test_a_literal_master_key_is_the_admin_key():
    assert parse_config(_config(master_key="sk-literal-master-1234")).admin_key().resolve() == "sk-literal-master-1234"


def test_the_admin_key_wins_when_both_are_the_same(monkeypatch):
    monkeypatch.setenv("LLMD_ADMIN", "sk-same-key-for-both-01")
    config = parse_config(_config("os.environ/LLMD_ADMIN", master_key="os.environ/ LLMD_ADMIN"))
    secret = config.admin_key()
    assert secret.where == "dispatcher_settings.api.admin_key" and secret.resolve() == "sk-same-key-for-both-01"


def test_two_different_admin_keys_are_refused_naming_both_keys_not_their_values():
    message = _error(_config("sk-admin-literal-0000", master_key="sk-master-literal-9999"))
    assert "dispatcher_settings.api.admin_key and general_settings.master_key are both set and differ" in message
    assert "sk-admin-literal" not in message and "sk-master-literal" not in message
    message = _error(_config("os.environ/LLMD_ADMIN", master_key="os.environ/LITELLM_MASTER_KEY"))
    assert "both set and differ" in message


@pytest.mark.parametrize("value, expected", [
    ("", "general_settings.master_key is empty"),
    ("os.environ/", "general_settings.master_key: 'os.environ/' needs a variable name"),
    (1234, "general_settings.master_key: must be text"),
])
def test_a_master_key_that_cannot_be_a_key_is_refused(value, expected):
    assert expected in _error(_config(master_key=value))


def test_no_admin_key_at_all():
    assert parse_config(_config(database_url="postgresql://u:p@h/litellm")).admin_key() is None
    assert parse_config(_config(master_key=None)).admin_key() is None


def test_master_key_is_not_named_as_ignored_but_the_rest_of_general_settings_is(caplog):
    caplog.set_level(logging.WARNING)
    parse_config(_config(master_key="sk-warned-about-never-1", database_url="postgresql://u:p@h/db",
                         alerting=["slack"]), source="proxy.yaml")
    [warning] = [r.getMessage() for r in caplog.records if "general_settings" in r.getMessage()]
    assert "general_settings (alerting, database_url) is LiteLLM proxy configuration" in warning
    assert "master_key" not in warning
    caplog.clear()
    parse_config(_config(master_key="sk-warned-about-never-1"), source="proxy.yaml")
    assert not [r for r in caplog.records if "general_settings" in r.getMessage()]
    assert "sk-warned-about-never-1" not in caplog.text
