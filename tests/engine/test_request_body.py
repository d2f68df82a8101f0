"""request_body(): the stored body with the deployment's model spliced in."""

from __future__ import annotations

import json

import orjson
import pytest

from dispatcher.config.loader import parse_config
from dispatcher.deployments import build_deployments
from dispatcher.engine.execution import request_body


def _deployment(model="openai/gpt-4o-mini", **params):
    config = parse_config({"model_list": [{"model_name": "g", "litellm_params": {"model": model, **params}}]})
    return build_deployments(config).by_id["g#0"]


def test_model_spliced_as_first_key():
    stored = orjson.dumps({"messages": [{"role": "user", "content": "hi"}], "temperature": 0}).decode()
    sent = request_body(stored, _deployment())
    assert sent.startswith(b'{"model":"gpt-4o-mini",')
    assert json.loads(sent) == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0,
    }


def test_empty_body():
    assert json.loads(request_body("{}", _deployment())) == {"model": "gpt-4o-mini"}


def test_model_name_with_special_characters_is_escaped():
    d = _deployment("together_ai/meta-llama/Llama \"3\"")
    sent = request_body('{"messages":[]}', d)
    assert json.loads(sent)["model"] == 'meta-llama/Llama "3"'


def test_body_defaults_merged_request_wins():
    d = _deployment(temperature=0.3, top_p=0.9, max_tokens=100)
    stored = orjson.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": 1.0}).decode()
    body = json.loads(request_body(stored, d))
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 1.0,
        "top_p": 0.9,
        "max_tokens": 100,
    }


def test_body_defaults_do_not_leak_config_fields():
    d = _deployment(api_key="sk-config-only-000111", rpm=10, tpm=1000, timeout=9, temperature=0)
    body = json.loads(request_body('{"messages":[]}', d))
    assert body == {"model": "gpt-4o-mini", "messages": [], "temperature": 0}


def test_litellm_connection_settings_not_sent_in_body():
    d = _deployment(api_version="2024-06-01", temperature=0)
    body = json.loads(request_body('{"messages":[]}', d))
    assert "api_version" not in body


@pytest.mark.parametrize("with_defaults", [False, True])
def test_result_is_valid_json_with_unicode(with_defaults):
    d = _deployment(temperature=0) if with_defaults else _deployment()
    stored = orjson.dumps({"messages": [{"role": "user", "content": "héllo \u4f60\u597d \"q\"\n"}]}).decode()
    body = json.loads(request_body(stored, d))
    assert body["messages"][0]["content"] == "héllo 你好 \"q\"\n"
    assert body["model"] == "gpt-4o-mini"
