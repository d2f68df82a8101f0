"""YAML alias bombs and bad chat defaults are refused when the config is read, not later."""

from __future__ import annotations

import os
import time

import pytest

from dispatcher.config.loader import CONFIG_ENV, load_config, parse_config
from dispatcher.deployments import build_deployments
from dispatcher.errors import ConfigError

MODEL = "model_list:\n  - model_name: g\n    litellm_params:\n      model: mock/echo\n"


def _bomb(levels: int = 6, width: int = 10) -> str:
    """The "billion laughs" shape: level i is a list of ``width`` aliases of level i-1 (10**6 leaves here:
    enough to pass the bound, small enough that the old loader survives it and the test fails)."""
    lines = ['l0: &l0 "laugh"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines)


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch, tmp_path):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


def _load(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path)


def test_alias_bomb_under_environment_variables_is_refused_quickly(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMD_BOMB", raising=False)
    bomb = _bomb()
    text = MODEL + "x-anchors:\n" + "\n".join("  " + line for line in bomb.splitlines()) + \
        "\nenvironment_variables:\n  LLMD_BOMB: *l6\n"
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert time.monotonic() - started < 2
    message = str(info.value)
    assert "expands to more than" in message and "alias" in message
    assert "line " in message
    assert "LLMD_BOMB" not in os.environ


def test_alias_bomb_as_a_chat_default_is_refused(tmp_path):
    text = _bomb() + "\n" + MODEL + "      temperature: *l6\n"
    with pytest.raises(ConfigError, match="expands to more than"):
        _load(tmp_path, text)


def test_recursive_alias_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="recursive YAML alias"):
        _load(tmp_path, MODEL + "      stop: &s [a, *s]\n")


def test_ordinary_aliases_still_work(tmp_path):
    text = (
        "x-common: &common {api_key: sk-shared-key-0001, rpm: 10}\n"
        "model_list:\n"
        "  - model_name: a\n    litellm_params: {<<: *common, model: openai/gpt-4o-mini}\n"
        "  - model_name: b\n    litellm_params: {<<: *common, model: openai/gpt-4o}\n"
    )
    path = tmp_path / "c.yaml"
    path.write_text(text)
    # x-common is not a section we read: named in a warning, not an error.
    config, _ = load_config(path)
    assert [e.litellm_params.rpm for e in config.model_list] == [10, 10]


def test_a_list_under_environment_variables_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"environment_variables: LLMD_LISTY must be a string or a number"):
        parse_config({"model_list": [{"model_name": "g", "litellm_params": {"model": "mock/x"}}],
                      "environment_variables": {"LLMD_LISTY": [1, 2]}})


def _params_error(**params) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({"model_list": [{"model_name": "g", "litellm_params": {"model": "mock/x", **params}}]})
    return str(info.value)


@pytest.mark.parametrize("params, expected", [
    ({"temperature": "hot"}, "temperature must be a number, not a string ('hot')"),
    ({"temperature": [0.1]}, "temperature must be a number, not a list"),
    ({"max_tokens": 1.5}, "max_tokens must be an integer, not a number"),
    ({"logprobs": "yes"}, "logprobs must be true or false"),
    ({"stop": 3}, "stop must be a string or a list"),
    ({"response_format": "json"}, "response_format must be a mapping"),
    ({"extra_body": [1]}, "extra_body must be a mapping"),
    ({"temperature": float("nan")}, "temperature holds a number that JSON cannot carry"),
])
def test_chat_defaults_of_the_wrong_type_are_refused(params, expected):
    message = _params_error(**params)
    assert "model_list[0].litellm_params" in message
    assert expected in message


def test_huge_or_deep_chat_defaults_are_refused():
    assert "holds more than 20,000 values" in _params_error(tools=[{"type": "function"}] * 10_001)
    deep: list = []
    for _ in range(40):
        deep = [deep]
    assert "nested deeper than 32 levels" in _params_error(extra_body={"x": deep})


def test_every_bad_default_is_listed_at_once():
    message = _params_error(temperature="hot", top_p="high", seed="x")
    for key in ("temperature", "top_p", "seed"):
        assert f"{key} must be" in message


def test_good_chat_defaults_pass_through():
    config = parse_config({"model_list": [{"model_name": "g", "litellm_params": {
        "model": "mock/x", "temperature": 0, "top_p": 1, "stop": ["\n"], "seed": 7,
        "response_format": {"type": "json_object"}, "extra_body": {"top_k": 5},
        "tool_choice": "auto", "logit_bias": {"50256": -100},
    }}]})
    defaults = build_deployments(config).by_id["g#0"].body_defaults
    assert defaults["temperature"] == 0 and defaults["top_k"] == 5 and defaults["stop"] == ["\n"]
