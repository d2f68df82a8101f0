"""RetryPolicy: how many retries per error class, and how long to wait."""

from __future__ import annotations

import random

import pytest

from dispatcher.config.schema import DispatcherSettings, RouterSettings
from dispatcher.engine.retry import RetryPolicy
from dispatcher.providers import errors as pe


def _policy(base=1.0, cap=8.0, seed=1, **router) -> RetryPolicy:
    return RetryPolicy(
        RouterSettings(**router),
        DispatcherSettings(retry_backoff_base=base, retry_backoff_cap=cap),
        random.Random(seed),
    )


RETRYABLE = [
    pe.RateLimitError("x"),
    pe.ServerError("x"),
    pe.ProviderTimeoutError("x"),
    pe.ProviderConnectionError("x"),
    pe.ProviderUnreachableError("x"),
    pe.InvalidResponseError("x"),
    pe.ProviderError("x"),
]
NOT_RETRYABLE = [
    pe.AuthenticationError("x"),
    pe.MissingCredentialsError("x"),
    pe.BadRequestError("x"),
    pe.ContextWindowExceededError("x"),
    pe.ContentPolicyViolationError("x"),
    pe.NotFoundError("x"),
    pe.InsufficientQuotaError("x"),
]


@pytest.mark.parametrize("error", RETRYABLE, ids=lambda e: type(e).__name__)
def test_retryable_get_num_retries(error):
    assert _policy(num_retries=4).retries_allowed("g", error) == 4


@pytest.mark.parametrize("error", NOT_RETRYABLE, ids=lambda e: type(e).__name__)
def test_not_retryable_get_zero(error):
    assert _policy(num_retries=4).retries_allowed("g", error) == 0


def test_default_num_retries_is_three():
    assert _policy().retries_allowed("g", pe.ServerError("x")) == 3


def test_retry_policy_overrides_per_class():
    policy = _policy(num_retries=2, retry_policy={"RateLimitErrorRetries": 9, "BadRequestErrorRetries": 1,
                                                  "InternalServerErrorRetries": 0})
    assert policy.retries_allowed("g", pe.RateLimitError("x")) == 9
    assert policy.retries_allowed("g", pe.BadRequestError("x")) == 1  # even a non-retryable class
    assert policy.retries_allowed("g", pe.ServerError("x")) == 0
    assert policy.retries_allowed("g", pe.ProviderTimeoutError("x")) == 2  # not overridden


def test_subclass_lookup_via_mro():
    policy = _policy(num_retries=2, retry_policy={"BadRequestErrorRetries": 3, "ConnectionErrorRetries": 5,
                                                  "AuthenticationErrorRetries": 1})
    assert policy.retries_allowed("g", pe.ContentPolicyViolationError("x")) == 3
    assert policy.retries_allowed("g", pe.ProviderUnreachableError("x")) == 5
    assert policy.retries_allowed("g", pe.MissingCredentialsError("x")) == 1


def test_most_specific_class_wins():
    policy = _policy(retry_policy={"BadRequestErrorRetries": 3, "ContextWindowExceededErrorRetries": 0})
    assert policy.retries_allowed("g", pe.ContextWindowExceededError("x")) == 0
    assert policy.retries_allowed("g", pe.ContentPolicyViolationError("x")) == 3


def test_group_policy_beats_global_policy():
    policy = _policy(
        num_retries=2,
        retry_policy={"RateLimitErrorRetries": 6, "TimeoutErrorRetries": 4},
        model_group_retry_policy={"cheap": {"RateLimitErrorRetries": 1}},
    )
    assert policy.retries_allowed("cheap", pe.RateLimitError("x")) == 1
    assert policy.retries_allowed("other", pe.RateLimitError("x")) == 6
    # classes the group does not name fall back to the global policy, then num_retries
    assert policy.retries_allowed("cheap", pe.ProviderTimeoutError("x")) == 4
    assert policy.retries_allowed("cheap", pe.ServerError("x")) == 2


def test_rate_limit_delay_exponential_within_half_ceiling():
    policy = _policy(base=1.0, cap=100.0)
    for retries_done in range(5):
        ceiling = 2.0**retries_done
        for _ in range(50):
            wait = policy.delay(pe.RateLimitError("x"), retries_done)
            assert ceiling / 2 <= wait <= ceiling


def test_rate_limit_delay_capped():
    policy = _policy(base=1.0, cap=8.0)
    waits = [policy.delay(pe.RateLimitError("x"), 20) for _ in range(100)]
    assert all(4.0 <= w <= 8.0 for w in waits)


def test_other_errors_small_jitter():
    policy = _policy()
    waits = [policy.delay(pe.ServerError("x"), 3) for _ in range(100)]
    assert all(0.0 <= w <= 0.25 for w in waits)
    assert len(set(waits)) > 1


def test_retry_after_setting_is_a_minimum():
    policy = _policy(retry_after=2.0)
    assert all(policy.delay(pe.ServerError("x"), 0) >= 2.0 for _ in range(20))
    assert all(policy.delay(pe.RateLimitError("x"), 0) >= 2.0 for _ in range(20))


def test_provider_retry_after_honoured():
    policy = _policy(base=1.0, cap=8.0)
    assert policy.delay(pe.RateLimitError("x", retry_after=30.0), 0) == 30.0
    assert policy.delay(pe.ServerError("x", retry_after=5.0), 0) == 5.0


def test_provider_retry_after_shorter_than_backoff_does_not_shorten_it():
    policy = _policy(base=4.0, cap=100.0)
    wait = policy.delay(pe.RateLimitError("x", retry_after=0.1), 2)
    assert 8.0 <= wait <= 16.0


def test_provider_retry_after_is_bounded():
    policy = _policy(cap=8.0)
    assert policy.delay(pe.RateLimitError("x", retry_after=10_000.0), 0) == 80.0


def test_seeded_rng_is_repeatable():
    a = [_policy(seed=42).delay(pe.RateLimitError("x"), n) for n in range(4)]
    b = [_policy(seed=42).delay(pe.RateLimitError("x"), n) for n in range(4)]
    assert a == b
