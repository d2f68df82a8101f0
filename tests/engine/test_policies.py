"""Retry and fallback decisions, from the error class alone."""

from __future__ import annotations

import random

import orjson
import pytest

from dispatcher.config.schema import DispatcherSettings, RouterSettings
from dispatcher.deployments import build_deployments
from dispatcher.config.loader import parse_config
from dispatcher.engine.execution import request_body
from dispatcher.engine.fallbacks import FallbackPolicy, groups_tried
from dispatcher.engine.retry import RetryPolicy
from dispatcher.providers import errors as pe


def retry_policy(**router) -> RetryPolicy:
    return RetryPolicy(RouterSettings(**router), DispatcherSettings(retry_backoff_base=1, retry_backoff_cap=8),
                       random.Random(1))


def test_retryable_classes_get_num_retries_and_others_none():
    policy = retry_policy(num_retries=4)
    assert policy.retries_allowed("chat", pe.ServerError("x")) == 4
    assert policy.retries_allowed("chat", pe.RateLimitError("x")) == 4
    assert policy.retries_allowed("chat", pe.ProviderTimeoutError("x")) == 4
    for error in (pe.AuthenticationError("x"), pe.BadRequestError("x"), pe.ContextWindowExceededError("x"),
                  pe.InsufficientQuotaError("x"), pe.NotFoundError("x")):
        assert policy.retries_allowed("chat", error) == 0


def test_retry_policy_per_class_and_per_group_override_num_retries():
    policy = retry_policy(
        num_retries=2,
        retry_policy={"RateLimitErrorRetries": 7, "BadRequestErrorRetries": 1},
        model_group_retry_policy={"cheap": {"InternalServerErrorRetries": 0}},
    )
    assert policy.retries_allowed("chat", pe.RateLimitError("x")) == 7
    assert policy.retries_allowed("chat", pe.ContextWindowExceededError("x")) == 1  # via its base class
    assert policy.retries_allowed("cheap", pe.ServerError("x")) == 0
    assert policy.retries_allowed("chat", pe.ServerError("x")) == 2


def test_rate_limit_backoff_is_exponential_jittered_capped_and_honours_retry_after():
    policy = retry_policy()
    waits = [policy.delay(pe.RateLimitError("x"), n) for n in range(6)]
    for n, wait in enumerate(waits):
        ceiling = min(8, 2 ** n)
        assert ceiling / 2 <= wait <= ceiling
    assert policy.delay(pe.RateLimitError("x", retry_after=30), 0) == 30
    assert policy.delay(pe.ServerError("x"), 3) <= 0.25  # other errors are retried promptly
    assert retry_policy(retry_after=5).delay(pe.ServerError("x"), 0) >= 5


def test_fallback_order_specific_then_default_and_capped():
    policy = FallbackPolicy(RouterSettings(
        fallbacks=[{"a": ["b", "c"]}], default_fallbacks=["z"], max_fallbacks=2,
        context_window_fallbacks=[{"a": ["big"]}], content_policy_fallbacks=[{"a": ["lenient"]}],
    ))
    server = pe.ServerError("x")
    assert policy.next_group(["a"], server) == "b"
    assert policy.next_group(["a", "b"], server) == "c"  # the primary's chain, in order
    assert policy.next_group(["a", "b", "c"], server) is None  # max_fallbacks (2) reached
    assert policy.candidates("a", server) == ["b", "c", "z"]
    assert policy.next_group(["a"], pe.ContextWindowExceededError("x")) == "big"
    assert policy.next_group(["a"], pe.ContentPolicyViolationError("x")) == "lenient"
    assert policy.next_group(["a"], pe.BadRequestError("x")) is None
    assert policy.next_group(["a"], pe.AuthenticationError("x")) == "b"
    assert policy.next_group(["a"], None) == "b"  # the whole group cooling down


def test_default_fallbacks_come_after_the_specific_ones():
    policy = FallbackPolicy(RouterSettings(fallbacks=[{"a": ["b"]}], default_fallbacks=["z"]))
    assert policy.next_group(["a"], pe.ServerError("x")) == "b"
    assert policy.next_group(["a", "b"], pe.ServerError("x")) == "z"
    assert policy.next_group(["a", "b", "z"], pe.ServerError("x")) is None


def test_groups_tried_accumulates_in_order():
    assert groups_tried(None, "a") == ["a"]
    assert groups_tried('["a", "b"]', "b") == ["a", "b"]


@pytest.mark.parametrize("defaults", [{}, {"temperature": 0.2}])
def test_request_body_sets_the_deployment_model_first_and_keeps_every_field(defaults):
    config = parse_config({"model_list": [{"model_name": "chat", "litellm_params": {
        "model": "openai/real-model", "api_base": "http://x", **defaults}}]})
    deployment = build_deployments(config).group("chat")[0]
    stored = orjson.dumps({"messages": [{"role": "user", "content": "hi"}], "seed": 7,
                           "response_format": {"type": "json_object"}, "temperature": 0.9}).decode()
    body = orjson.loads(request_body(stored, deployment))
    assert body["model"] == "real-model"
    assert body["seed"] == 7 and body["response_format"] == {"type": "json_object"}
    assert body["temperature"] == 0.9  # the request's own value wins over config defaults
