"""URLs in the config: checked when loading, with the key path (or variable) and no traceback."""

from __future__ import annotations

import logging

import pytest

from dispatcher.config.loader import CONFIG_ENV, DATABASE_URL_ENV, REDIS_URL_ENV, load_config, parse_config
from dispatcher.deployments import build_deployments
from dispatcher.errors import ConfigError

GOOD = {"model_name": "good", "litellm_params": {"model": "mock/echo"}}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in (CONFIG_ENV, REDIS_URL_ENV, DATABASE_URL_ENV, "LLMD_TEST_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _settings_error(**settings) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({"model_list": [GOOD], "dispatcher_settings": settings})
    return str(info.value)


@pytest.mark.parametrize("value, expected", [
    ("localhost:6379", "write it like redis://127.0.0.1:6379/0"),
    ("http://localhost:6379", "a Redis URL starts with redis://"),
    ("redis://", "has no host"),
    ("redis://host:notaport/0", "is not a valid URL"),
])
def test_bad_redis_url_names_the_key(value, expected):
    message = _settings_error(redis_url=value)
    assert "dispatcher_settings.redis_url" in message and expected in message


@pytest.mark.parametrize("value, expected", [
    ("notaurl", "is not a URL"),
    ("mysql://user@db/x", "'mysql' is not supported"),
    ("postgresql+asyncpg://u@h/db", "'postgresql+asyncpg' is not supported"),
])
def test_bad_database_url_names_the_key(value, expected):
    message = _settings_error(database_url=value)
    assert "dispatcher_settings.database_url" in message and expected in message


def test_os_environ_urls_are_resolved(monkeypatch):
    monkeypatch.setenv("LLMD_TEST_URL", "redis://cache.example:6380/1")
    config = parse_config({"model_list": [GOOD], "dispatcher_settings": {"redis_url": "os.environ/LLMD_TEST_URL"}})
    assert config.dispatcher_settings.redis_url == "redis://cache.example:6380/1"


def test_os_environ_url_unset_names_key_and_variable():
    message = _settings_error(redis_url="os.environ/LLMD_TEST_URL")
    assert "dispatcher_settings.redis_url" in message
    assert "environment variable LLMD_TEST_URL is not set" in message


def test_password_never_shown_in_url_errors():
    message = _settings_error(database_url="mysql://admin:hunter2-secret@db/x")
    assert "hunter2-secret" not in message and "admin:***@db" in message


@pytest.mark.parametrize("variable, value, expected", [
    (DATABASE_URL_ENV, "notaurl", "is not a URL"),
    (DATABASE_URL_ENV, "mysql://u@h/db", "'mysql' is not supported"),
    (REDIS_URL_ENV, "localhost:6379", "write it like redis://"),
    (REDIS_URL_ENV, "os.environ/LLMD_TEST_URL", "LLMD_TEST_URL is not set"),
])
def test_bad_env_override_names_the_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_config()
    assert f"${variable}" in str(info.value) and expected in str(info.value)


# -- api_base --------------------------------------------------------------------------------

def _with_bad_base(api_base: str):
    bad = {"model_name": "bad", "litellm_params": {"model": "openai/x", "api_base": api_base}}
    return parse_config({"model_list": [GOOD, bad]})


@pytest.mark.parametrize("api_base, expected", [
    ("api.example.com/v1", "is not a URL"),
    ("ftp://files.example.com", "the scheme must be http or https"),
    ("http:///v1", "has no host"),
    ("http://host:99999/v1", "is not a valid URL"),
    ("http://exa mple.com/v1", "contains spaces"),
    ("https://example.com/" + "a" * 3000, "longer than 2048 characters"),
])
def test_a_deployment_with_a_bad_api_base_is_skipped_and_the_others_work(caplog, api_base, expected):
    caplog.set_level(logging.WARNING)
    config = _with_bad_base(api_base)
    assert list(build_deployments(config).by_group) == ["good"]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "model_list[1].litellm_params.api_base" in text and expected in text


def test_huge_api_base_from_the_environment_is_skipped_without_echoing_it(monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("LLMD_TEST_URL", "https://x.example/" + "A" * 130_000)
    config = _with_bad_base("os.environ/LLMD_TEST_URL")
    assert list(build_deployments(config).by_id) == ["good#0"]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "(from os.environ/LLMD_TEST_URL)" in text and "130,018 characters" in text
    assert len(text) < 5_000


def test_only_deployment_with_a_bad_api_base_fails_loading():
    with pytest.raises(ConfigError, match=r"no model_list entry can be served[\s\S]*the scheme must be http"):
        parse_config({"model_list": [{"model_name": "b", "litellm_params": {"model": "openai/x", "api_base": "ws://h"}}]})
