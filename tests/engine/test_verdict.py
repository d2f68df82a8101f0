"""The verdict after a failed try: retry after X, another deployment, fall back to G, or fail."""

from __future__ import annotations

import json
import random

from dispatcher.config.schema import DispatcherSettings, RouterSettings
from dispatcher.engine.fallbacks import FallbackPolicy
from dispatcher.engine.retry import RetryPolicy
from dispatcher.engine.verdict import (
    GROUP_UNAVAILABLE,
    INTERNAL_ERROR_RETRIES,
    Fail,
    FallBack,
    InternalFailure,
    OtherDeployment,
    RetryAfter,
    Verdicts,
)
from dispatcher.providers import errors as pe
from dispatcher.store.jobs import ClaimedJob


def verdicts(group_sizes=None, **router) -> Verdicts:
    settings = RouterSettings(**router)
    retry = RetryPolicy(settings, DispatcherSettings(retry_backoff_base=1, retry_backoff_cap=8), random.Random(1))
    return Verdicts(retry, FallbackPolicy(settings), group_sizes or {"chat": 1})


def job(retries=0, group="chat", tried=None) -> ClaimedJob:
    return ClaimedJob(
        id=1, batch_id="b", custom_id="c", model_group=group, priority=5, body="{}", claim=1,
        attempts=retries, retries=retries, est_prompt_tokens=5, est_completion_tokens=4,
        groups_tried=json.dumps(tried) if tried else None, created_at=0.0,
    )


def test_a_retryable_error_is_retried_after_its_backoff_until_the_retries_are_spent():
    rules = verdicts(num_retries=2)
    first = rules.verdict(job(retries=0), pe.RateLimitError("slow down", retry_after=3))
    assert first == RetryAfter(3, 2)  # never sooner than the provider's Retry-After
    second = rules.verdict(job(retries=1), pe.ServerError("boom"))
    assert isinstance(second, RetryAfter) and 0 <= second.seconds <= 0.25
    assert rules.verdict(job(retries=2), pe.ServerError("boom")) == Fail(["chat"])


def test_a_deployment_fault_tries_another_deployment_while_the_group_has_one_left():
    rules = verdicts(group_sizes={"chat": 3}, num_retries=0)
    assert rules.verdict(job(retries=0), pe.AuthenticationError("bad key")) == OtherDeployment()
    assert rules.verdict(job(retries=1), pe.NotFoundError("no model")) == OtherDeployment()
    # every deployment tried: the error's own rules apply (no retries for a bad key)
    assert rules.verdict(job(retries=2), pe.AuthenticationError("bad key")) == Fail(["chat"])
    # a group of one deployment has no other to try
    assert verdicts(num_retries=0).verdict(job(), pe.AuthenticationError("bad key")) == Fail(["chat"])


def test_retries_spent_fall_back_to_the_next_group_by_error_class():
    rules = verdicts(
        num_retries=0, fallbacks=[{"chat": ["backup"]}],
        context_window_fallbacks=[{"chat": ["big"]}], default_fallbacks=["last"],
    )
    assert rules.verdict(job(), pe.ServerError("boom")) == FallBack("backup", ["chat"])
    assert rules.verdict(job(), pe.ContextWindowExceededError("long")) == FallBack("big", ["chat"])
    assert rules.verdict(job(), pe.BadRequestError("malformed")) == Fail(["chat"])  # no group fixes it
    # on a fallback group, the chain of the group first tried goes on
    moved = job(group="backup", tried=["chat", "backup"])
    assert rules.verdict(moved, pe.ServerError("boom")) == FallBack("last", ["chat", "backup"])
    done = job(group="last", tried=["chat", "backup", "last"])
    assert rules.verdict(done, pe.ServerError("boom")) == Fail(["chat", "backup", "last"])


def test_an_unavailable_group_falls_back_without_using_a_retry_or_fails():
    rules = verdicts(fallbacks=[{"chat": ["backup"]}], max_fallbacks=1)
    assert rules.verdict(job(retries=0), GROUP_UNAVAILABLE) == FallBack("backup", ["chat"])
    assert rules.verdict(job(group="backup", tried=["chat", "backup"]), GROUP_UNAVAILABLE) == Fail(
        ["chat", "backup"]
    )
    assert verdicts().verdict(job(), GROUP_UNAVAILABLE) == Fail(["chat"])


def test_an_internal_failure_is_retried_one_two_three_seconds_later_then_fails_without_fallback():
    rules = verdicts(num_retries=0, fallbacks=[{"chat": ["backup"]}])
    failure = InternalFailure(RuntimeError("a bug"))
    waits = [rules.verdict(job(retries=n), failure) for n in range(INTERNAL_ERROR_RETRIES)]
    assert waits == [RetryAfter(1.0, 3), RetryAfter(2.0, 3), RetryAfter(3.0, 3)]
    assert rules.verdict(job(retries=INTERNAL_ERROR_RETRIES), failure) == Fail(["chat"])
