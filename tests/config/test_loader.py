"""Config lookup, validation messages, env overrides and build_deployments."""

from __future__ import annotations

import pytest

from dispatcher.config.loader import (
    CONFIG_ENV,
    DATABASE_URL_ENV,
    REDIS_URL_ENV,
    load_config,
    parse_config,
)
from dispatcher.config.secrets import MissingSecretError
from dispatcher.deployments import build_deployments
from dispatcher.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    """No inherited config/env overrides, and no ./llm-dispatch.yaml in the working dir."""
    for name in (CONFIG_ENV, REDIS_URL_ENV, DATABASE_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _entry(name="a", model="openai/gpt-4o-mini", **params):
    return {"model_name": name, "litellm_params": {"model": model, **params}}


def _config(*entries, **sections):
    return {"model_list": list(entries) or [_entry()], **sections}


def _error(raw) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="test.yaml")
    return str(info.value)


# -- lookup --------------------------------------------------------------------------------

def test_builtin_default_when_no_file():
    config, path = load_config()
    assert path is None
    assert [d.model_name for d in config.model_list] == ["mock"]
    assert config.model_list[0].litellm_params.model == "mock/echo"
    assert config.dispatcher_settings.default_model == "mock"
    assert config.dispatcher_settings.redis_url is None


def test_local_file_is_found(tmp_path):
    (tmp_path / "llm-dispatch.yaml").write_text(
        "model_list:\n  - model_name: local\n    litellm_params: {model: mock/x}\n"
    )
    config, path = load_config()
    assert path is not None and path.name == "llm-dispatch.yaml"
    assert config.model_list[0].model_name == "local"


def test_explicit_path_missing_names_path(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(missing) in str(info.value)
    assert "--config" in str(info.value)


def test_explicit_path_is_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_list:\n  - model_name: g\n    litellm_params: {model: mock/echo}\n")
    config, found = load_config(str(path))
    assert found == path
    assert config.model_list[0].model_name == "g"


def test_env_config_path(monkeypatch, tmp_path):
    path = tmp_path / "from-env.yaml"
    path.write_text("model_list:\n  - model_name: envgroup\n    litellm_params: {model: mock/echo}\n")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    config, found = load_config()
    assert found == path
    assert config.model_list[0].model_name == "envgroup"


def test_env_config_path_missing(monkeypatch, tmp_path):
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError) as info:
        load_config()
    assert "gone.yaml" in str(info.value)
    assert CONFIG_ENV in str(info.value)


def test_invalid_yaml_reports_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model_list:\n  - model_name: a\n    litellm_params: {model: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "not valid YAML" in message
    assert "line 4" in message
    assert str(path) in message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_config(path)


def test_top_level_not_mapping():
    assert "expected a mapping" in _error(["a"])


# -- validation messages ---------------------------------------------------------------------

def test_unknown_key_names_path():
    message = _error(_config(dispatcher_settings={"worker": {"concurency": 3}}))
    assert "dispatcher_settings.worker.concurency: unknown key" in message
    assert message.startswith("test.yaml is invalid")


def test_unknown_key_in_model_list_entry():
    entry = _entry()
    entry["modle_info"] = {}
    assert "model_list[0].modle_info: unknown key" in _error(_config(entry))


def test_bad_value_names_indexed_path():
    message = _error(_config(_entry(), _entry("b", rpm=0)))
    assert "model_list[1].litellm_params.rpm" in message


def test_missing_required_key():
    message = _error({"model_list": [{"model_name": "a", "litellm_params": {}}]})
    assert "model_list[0].litellm_params.model: required key is missing" in message


def test_bare_model_name_is_openai_as_in_litellm():
    [deployment] = build_deployments(parse_config(_config(_entry(model="gpt-3.5-turbo")))).by_id.values()
    assert (deployment.provider, deployment.provider_model) == ("openai", "gpt-3.5-turbo")
    assert deployment.api_base == "https://api.openai.com/v1"


def test_empty_model_list():
    assert "model_list" in _error({"model_list": []})


def test_fallbacks_naming_unknown_group():
    message = _error(_config(router_settings={"fallbacks": [{"a": ["ghost"]}]}))
    assert "router_settings.fallbacks[0].a" in message
    assert "'ghost'" in message
    assert "known groups: a" in message


def test_fallback_source_unknown_group():
    message = _error(_config(router_settings={"context_window_fallbacks": [{"ghost": ["a"]}]}))
    assert "router_settings.context_window_fallbacks[0]" in message
    assert "'ghost'" in message


def test_default_model_unknown_group():
    message = _error(_config(dispatcher_settings={"default_model": "nope"}))
    assert "dispatcher_settings.default_model" in message and "'nope'" in message


def test_retry_policy_unknown_class():
    message = _error(_config(router_settings={"retry_policy": {"FooErrorRetries": 2}}))
    assert "router_settings.retry_policy" in message
    assert "FooErrorRetries" in message
    assert "RateLimitErrorRetries" in message  # lists the known ones


def test_retry_policy_known_class_accepted():
    config = parse_config(_config(router_settings={"retry_policy": {"RateLimitErrorRetries": 7}}))
    assert config.router_settings.retry_policy == {"RateLimitErrorRetries": 7}


def test_model_group_retry_policy_unknown_class():
    message = _error(_config(router_settings={"model_group_retry_policy": {"a": {"FooRetries": 1}}}))
    assert "FooRetries" in message


def test_model_group_retry_policy_unknown_group():
    message = _error(
        _config(router_settings={"model_group_retry_policy": {"zz": {"RateLimitErrorRetries": 1}}})
    )
    assert "router_settings.model_group_retry_policy" in message and "'zz'" in message


def test_duplicate_model_info_ids():
    one = {**_entry("a"), "model_info": {"id": "same"}}
    two = {**_entry("b"), "model_info": {"id": "same"}}
    assert "repeated: same" in _error(_config(one, two))


def test_completion_window_must_be_duration():
    message = _error(_config(dispatcher_settings={"completion_window": "tomorrow"}))
    assert "dispatcher_settings.completion_window" in message


def test_litellm_sections_are_accepted():
    config = parse_config(_config(litellm_settings={"drop_params": True}, general_settings={}))
    assert config.litellm_settings == {"drop_params": True}


# -- env overrides --------------------------------------------------------------------------

def test_env_overrides_redis_and_database(monkeypatch):
    monkeypatch.setenv(REDIS_URL_ENV, "redis://example:6379/2")
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://db/x")
    config, _ = load_config()
    assert config.dispatcher_settings.redis_url == "redis://example:6379/2"
    assert config.dispatcher_settings.database_url == "postgresql://db/x"


def test_env_override_beats_file(monkeypatch, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "model_list:\n  - model_name: g\n    litellm_params: {model: mock/echo}\n"
        "dispatcher_settings:\n  redis_url: redis://file:1/0\n  database_url: sqlite:///file.db\n"
    )
    monkeypatch.setenv(REDIS_URL_ENV, "redis://env:2/0")
    config, _ = load_config(path)
    assert config.dispatcher_settings.redis_url == "redis://env:2/0"
    assert config.dispatcher_settings.database_url == "sqlite:///file.db"


def test_empty_redis_env_disables_redis(monkeypatch, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "model_list:\n  - model_name: g\n    litellm_params: {model: mock/echo}\n"
        "dispatcher_settings:\n  redis_url: redis://file:1/0\n"
    )
    monkeypatch.setenv(REDIS_URL_ENV, "")
    config, _ = load_config(path)
    assert config.dispatcher_settings.redis_url is None


def test_no_env_keeps_defaults():
    config, _ = load_config()
    assert config.dispatcher_settings.database_url == "sqlite:///./llm-dispatch.db"


# -- build_deployments ----------------------------------------------------------------------

def _deployments(*entries, **sections):
    return build_deployments(parse_config(_config(*entries, **sections)))


def test_openai_defaults_api_base_and_key_env(monkeypatch):
    deployments = _deployments(_entry("a", "openai/gpt-4o-mini"))
    d = deployments.by_id["a#0"]
    assert d.provider == "openai" and d.adapter == "openai"
    assert d.provider_model == "gpt-4o-mini"
    assert d.api_base == "https://api.openai.com/v1"
    assert d.api_key is not None and d.api_key.env_name == "OPENAI_API_KEY"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-resolved-0001")
    assert d.api_key.resolve() == "sk-test-resolved-0001"


def test_other_provider_prefixes():
    deployments = _deployments(_entry("g", "groq/llama-3.1-8b-instant"), _entry("d", "deepseek/deepseek-chat"))
    assert deployments.by_id["g#0"].api_base == "https://api.groq.com/openai/v1"
    assert deployments.by_id["g#0"].api_key.env_name == "GROQ_API_KEY"
    assert deployments.by_id["d#0"].api_key.env_name == "DEEPSEEK_API_KEY"


def test_custom_api_base_has_no_default_key_and_is_stripped():
    d = _deployments(_entry("a", "openai/local", api_base="http://localhost:8000/v1/")).by_id["a#0"]
    assert d.api_base == "http://localhost:8000/v1"
    assert d.api_key is None


def test_explicit_env_key_resolves_at_call_time(monkeypatch):
    monkeypatch.delenv("MY_TEST_KEY_VAR", raising=False)
    d = _deployments(_entry("a", api_key="os.environ/MY_TEST_KEY_VAR")).by_id["a#0"]
    with pytest.raises(MissingSecretError) as info:
        d.api_key.resolve()
    assert "MY_TEST_KEY_VAR" in str(info.value)
    assert "model_list[0].litellm_params.api_key" in str(info.value)
    monkeypatch.setenv("MY_TEST_KEY_VAR", "late-value-123")
    assert d.api_key.resolve() == "late-value-123"


def test_unsupported_provider():
    with pytest.raises(ConfigError) as info:
        _deployments(_entry("a", "bedrock/anthropic.claude-3-haiku"))
    message = str(info.value)
    assert "model_list[0].litellm_params.model" in message
    assert "'bedrock'" in message
    assert "openai" in message  # lists the supported prefixes


def test_hosted_vllm_needs_api_base():
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params\.api_base"):
        _deployments(_entry("a", "hosted_vllm/llama"))


def test_mock_has_no_key_and_no_base():
    d = _deployments(_entry("m", "mock/echo")).by_id["m#0"]
    assert d.adapter == "mock" and d.api_key is None and d.api_base is None


def test_ids_groups_and_order():
    deployments = _deployments(
        _entry("a", "mock/one"),
        {**_entry("b", "mock/two"), "model_info": {"id": "custom"}},
        _entry("a", "mock/three"),
    )
    assert list(deployments.by_id) == ["a#0", "custom", "a#1"]
    assert deployments.groups == ["a", "b"]
    assert [d.provider_model for d in deployments.group("a")] == ["one", "three"]
    assert deployments.group("missing") == []


def test_generated_id_clashing_with_explicit_id():
    with pytest.raises(ConfigError, match="used twice"):
        _deployments({**_entry("a", "mock/x"), "model_info": {"id": "a#1"}}, _entry("a", "mock/y"))


def test_timeout_limit_key_budget_and_body_defaults():
    deployments = _deployments(
        _entry("a", "mock/x", timeout=5, limit_group="shared", temperature=0.2, max_budget=10),
        _entry("b", "mock/y"),
        router_settings={"timeout": 33},
    )
    a, b = deployments.by_id["a#0"], deployments.by_id["b#0"]
    assert a.timeout == 5 and b.timeout == 33
    assert a.limit_key == "shared" and b.limit_key == "b#0"
    assert a.body_defaults == {"temperature": 0.2}
    assert b.body_defaults == {}
    assert a.budget_duration == "30d" and b.budget_duration is None


def test_extra_headers_secret_only_when_named_like_one():
    d = _deployments(
        _entry("a", extra_headers={"X-Api-Key": "hdr-value-abc123", "X-Team": "research"})
    ).by_id["a#0"]
    assert d.extra_headers["X-Api-Key"].sensitive is True
    assert d.extra_headers["X-Team"].sensitive is False
    assert d.extra_headers["X-Team"].resolve() == "research"


def test_deployment_repr_hides_key():
    d = _deployments(_entry("a", api_key="sk-literal-never-shown-42")).by_id["a#0"]
    assert "sk-literal-never-shown-42" not in repr(d)
    assert "a#0" in repr(d)


# -- LiteLLM proxy sections ------------------------------------------------------------------

def test_environment_variables_section_feeds_os_environ_references(monkeypatch):
    monkeypatch.delenv("LLMD_TEST_BASE", raising=False)
    monkeypatch.delenv("LLMD_TEST_KEY", raising=False)
    monkeypatch.setenv("LLMD_TEST_KEY", "sk-the-real-environment-wins")
    config = parse_config(_config(
        _entry(api_base="os.environ/LLMD_TEST_BASE", api_key="os.environ/LLMD_TEST_KEY"),
        environment_variables={"LLMD_TEST_BASE": "http://127.0.0.1:9/v1", "LLMD_TEST_KEY": "sk-file"},
    ))
    [deployment] = build_deployments(config).by_id.values()
    assert deployment.api_base == "http://127.0.0.1:9/v1"
    assert deployment.api_key.resolve() == "sk-the-real-environment-wins"


def test_api_base_from_an_unset_variable_names_the_key(monkeypatch):
    monkeypatch.delenv("LLMD_TEST_UNSET_BASE", raising=False)
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params\.api_base: environment "
                                          "variable LLMD_TEST_UNSET_BASE is not set"):
        parse_config(_config(_entry(api_base="os.environ/LLMD_TEST_UNSET_BASE")))


def test_litellm_settings_retries_and_timeout_apply_unless_router_settings_set_them():
    config = parse_config(_config(litellm_settings={"num_retries": 7, "request_timeout": 33}))
    assert (config.router_settings.num_retries, config.router_settings.timeout) == (7, 33)
    config = parse_config(_config(litellm_settings={"num_retries": 7}, router_settings={"num_retries": 1}))
    assert config.router_settings.num_retries == 1


def test_deployment_keys_at_entry_level_point_to_litellm_params():
    message = _error(_config({"model_name": "a", "api_key": "k", "litellm_params": {"model": "openai/x"}}))
    assert "model_list[0].api_key: unknown key here: api_key belongs in this entry's litellm_params" in message


def test_entry_level_rpm_tpm_are_adopted_as_litellm_reads_them():
    config = parse_config(_config(
        {"model_name": "a", "rpm": 3, "tpm": 20000, "litellm_params": {"model": "openai/x"}},
        {"model_name": "b", "rpm": 3, "litellm_params": {"model": "openai/y", "rpm": 9}},
    ))
    a, b = build_deployments(config).by_id.values()
    assert (a.rpm, a.tpm) == (3, 20000)
    assert b.rpm == 9  # litellm_params wins


def test_every_unknown_group_reference_is_reported_at_once():
    message = _error(_config(router_settings={
        "fallbacks": [{"a": ["nosuch"]}], "default_fallbacks": ["zz"], "model_group_retry_policy": {"q": {}},
    }))
    assert "router_settings.fallbacks[0].a names model group 'nosuch'" in message
    assert "router_settings.default_fallbacks names model group 'zz'" in message
    assert "router_settings.model_group_retry_policy names model group 'q'" in message
