"""Embeddings lines (``url: /v1/embeddings``): accepted shapes, one url per batch, refusals."""

from __future__ import annotations

import json

import orjson
import pytest

from dispatcher.config.loader import parse_config
from dispatcher.deployments import build_deployments
from dispatcher.intake.validate import CHAT_COMPLETIONS, EMBEDDINGS, JobSpec, LineValidator, Problem
from dispatcher.providers.provider_set import request_checks

MSG = [{"role": "user", "content": "Hello there"}]


def _validator(endpoint=None, checks=None) -> LineValidator:
    return LineValidator(known_groups=("embed", "gpt", "claude"), default_group=None, default_max_tokens=100,
                         endpoint=endpoint, request_checks=checks)


def _embedding(custom_id="e1", url="/v1/embeddings", **body) -> bytes:
    body.setdefault("model", "embed")
    body.setdefault("input", "The food was delicious")
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body}).encode()


def _chat(custom_id="c1") -> bytes:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": "gpt", "messages": MSG}}).encode()


def _problem(result, code: str) -> Problem:
    assert isinstance(result, Problem), result
    assert result.code == code, result
    return result


@pytest.mark.parametrize("given", [
    "The food was delicious",
    ["first text", "second text"],
    [1212, 318, 257],  # one input as token ids
    [[1212, 318], [257, 1332]],
])
def test_an_embeddings_line_books_input_tokens_only(given):
    validator = _validator()
    spec = validator.validate(1, _embedding(input=given))
    assert isinstance(spec, JobSpec)
    assert spec.endpoint == EMBEDDINGS and validator.endpoint == EMBEDDINGS
    assert spec.model_group == "embed"
    assert orjson.loads(spec.body) == {"input": given}  # the group is a column, not in the body
    assert spec.est_prompt_tokens > 3 and spec.est_completion_tokens == 0


def test_the_openai_sdk_path_without_v1_is_the_same_endpoint():
    spec = _validator().validate(1, _embedding(url="/embeddings", dimensions=256, encoding_format="base64"))
    assert isinstance(spec, JobSpec) and spec.endpoint == EMBEDDINGS
    assert orjson.loads(spec.body) == {"input": "The food was delicious", "dimensions": 256,
                                       "encoding_format": "base64"}


def test_chat_lines_keep_no_endpoint_on_the_job():
    validator = _validator()
    spec = validator.validate(1, _chat())
    assert isinstance(spec, JobSpec) and spec.endpoint is None
    assert validator.endpoint == CHAT_COMPLETIONS


@pytest.mark.parametrize(("given", "param"), [
    ("", "body.input"),
    ([], "body.input"),
    (None, "body.input"),
    (["fine", ""], "body.input[1]"),
    (["fine", 3], "body.input[1]"),
    ([[1, 2], []], "body.input[1]"),
])
def test_inputs_openai_refuses_are_refused_naming_them(given, param):
    problem = _problem(_validator().validate(4, _embedding(input=given)), "invalid_request")
    assert problem.param == param and problem.message.startswith("line 4: ")


@pytest.mark.parametrize(("field", "value"), [("dimensions", 0), ("dimensions", "256"),
                                              ("encoding_format", "int8")])
def test_bad_options_are_refused(field, value):
    problem = _problem(_validator().validate(1, _embedding(**{field: value})), "invalid_request")
    assert problem.param == f"body.{field}"


def test_messages_on_the_embeddings_url_point_at_chat():
    problem = _problem(_validator().validate(1, _embedding(messages=MSG)), "invalid_request")
    assert "/v1/chat/completions" in problem.message and problem.param == "body.messages"


def test_a_batch_mixing_urls_refuses_the_lines_that_differ_naming_them():
    validator = _validator()
    assert isinstance(validator.validate(1, _embedding("e1")), JobSpec)
    problem = _problem(validator.validate(2, _chat("c2")), "invalid_url")
    assert problem.param == "url"
    assert problem.message.startswith("line 2: url /v1/chat/completions differs from the batch's endpoint "
                                      "/v1/embeddings (set by line 1)")
    assert isinstance(validator.validate(3, _embedding("e3")), JobSpec)


def test_a_short_form_chat_line_counts_as_chat_completions():
    validator = _validator()
    assert isinstance(validator.validate(1, _chat()), JobSpec)
    short = json.dumps({"custom_id": "s", "model": "gpt", "messages": MSG}).encode()
    assert isinstance(validator.validate(2, short), JobSpec)
    problem = _problem(validator.validate(3, _embedding()), "invalid_url")
    assert "(set by line 1)" in problem.message


def test_the_endpoint_given_at_creation_binds_every_line():
    validator = _validator(endpoint=EMBEDDINGS)
    problem = _problem(validator.validate(1, _chat()), "invalid_url")
    assert "given when the batch was created" in problem.message
    assert isinstance(validator.validate(2, _embedding()), JobSpec)


@pytest.mark.parametrize("url", ["/v1/responses", "/v1/completions", 7])
def test_an_unknown_url_names_the_served_ones(url):
    problem = _problem(_validator().validate(1, _embedding(url=url)), "invalid_url")
    assert "use one of: /v1/chat/completions, /v1/embeddings" in problem.message


def test_an_embeddings_line_for_an_anthropic_group_is_refused_at_submit():
    config = parse_config({"model_list": [
        {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-sonnet-4-5"}},
        {"model_name": "embed", "litellm_params": {"model": "openai/text-embedding-3-small"}},
    ]})
    validator = _validator(checks=request_checks(build_deployments(config)))
    problem = _problem(validator.validate(1, _embedding(model="claude")), "invalid_request")
    assert problem.param == "url"
    assert "model group 'claude' (anthropic/claude-sonnet-4-5)" in problem.message
    assert "Anthropic serves chat completions only" in problem.message
    assert isinstance(validator.validate(2, _embedding("e2", model="embed")), JobSpec)
