"""What becomes of a job after a try that did not succeed: one function gives the verdict.

    verdict             when
    RetryAfter(s)       the group still allows a retry for this failure: try the group again
                        in ``s`` seconds (backoff, the provider's Retry-After)
    OtherDeployment     the deployment's own fault (bad key, unknown model) and the group has
                        deployments the job has not tried: again at once, elsewhere (admission
                        has cooled the failing one down)
    FallBack(group)     the group is done with the job and a fallback group is next
    Fail                nothing is left to try

A failure is a provider error, ``GROUP_UNAVAILABLE`` (every deployment of the group cooling
down or over budget: no call was made) or an ``InternalFailure`` (the dispatcher failed before
any answer: a Redis hiccup, a bug). How many retries and how long to wait is counted by
``RetryPolicy``, which group comes next by ``FallbackPolicy``; this module decides which
applies. It decides only: ``JobRunner`` turns a verdict into the Outcome that is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from dispatcher.engine.fallbacks import FallbackPolicy, groups_tried
from dispatcher.engine.retry import RetryPolicy
from dispatcher.providers import errors as pe
from dispatcher.store.jobs import ClaimedJob

# A job that fails inside the dispatcher before any answer is queued again this many times,
# 1, 2, 3 s later (a Redis hiccup passes; a bug fails the job with its reason).
INTERNAL_ERROR_RETRIES = 3
INTERNAL_RETRY_DELAY_S = 1.0


class _GroupUnavailable:
    def __repr__(self) -> str:
        return "GROUP_UNAVAILABLE"


GROUP_UNAVAILABLE = _GroupUnavailable()


@dataclass(frozen=True, slots=True)
class InternalFailure:
    """The dispatcher failed before the provider answered."""

    error: BaseException


Failure = Union[pe.ProviderError, _GroupUnavailable, InternalFailure]


@dataclass(frozen=True, slots=True)
class RetryAfter:
    seconds: float
    retries_allowed: int  # for the log line "retry n/allowed"


@dataclass(frozen=True, slots=True)
class OtherDeployment:
    pass


@dataclass(frozen=True, slots=True)
class FallBack:
    group: str
    tried: list[str]  # the groups tried so far, in order, the current one last


@dataclass(frozen=True, slots=True)
class Fail:
    tried: list[str]  # the groups tried, in order (only the current one without fallbacks)


Verdict = Union[RetryAfter, OtherDeployment, FallBack, Fail]


class Verdicts:
    """The retry, deployment and fallback rules of one configuration, applied in one place."""

    def __init__(self, retry: RetryPolicy, fallbacks: FallbackPolicy, group_sizes: dict[str, int]):
        self._retry = retry
        self._fallbacks = fallbacks
        self._group_sizes = group_sizes

    def verdict(self, job: ClaimedJob, failure: Failure) -> Verdict:
        """What to do with ``job`` after ``failure`` (``job.retries``: retries in its group so far)."""
        if isinstance(failure, InternalFailure):
            if job.retries < INTERNAL_ERROR_RETRIES:
                return RetryAfter(INTERNAL_RETRY_DELAY_S * (job.retries + 1), INTERNAL_ERROR_RETRIES)
            return Fail([job.model_group])  # no fallback: another group would fail the same way
        if isinstance(failure, pe.ProviderError):
            if failure.deployment_specific and job.retries < self._group_sizes.get(job.model_group, 1) - 1:
                return OtherDeployment()
            allowed = self._retry.retries_allowed(job.model_group, failure)
            if job.retries < allowed:
                return RetryAfter(self._retry.delay(failure, job.retries), allowed)
            return self._leave_group(job, failure)
        return self._leave_group(job, None)

    def _leave_group(self, job: ClaimedJob, error: pe.ProviderError | None) -> FallBack | Fail:
        tried = groups_tried(job.groups_tried, job.model_group)
        next_group = self._fallbacks.next_group(tried, error)
        return FallBack(next_group, tried) if next_group is not None else Fail(tried)
