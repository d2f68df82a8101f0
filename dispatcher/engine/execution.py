"""Runs one claimed job: pick a deployment, call it, turn the answer into an Outcome."""

from __future__ import annotations

import json
import logging
import time
from typing import Callable

import orjson

from dispatcher.config.secrets import redact
from dispatcher.deployments import Deployment
from dispatcher.engine.fallbacks import FallbackPolicy
from dispatcher.engine.outcomes import AttemptRecord, Outcome
from dispatcher.engine.retry import RetryPolicy
from dispatcher.engine.stalls import StallWatch
from dispatcher.engine.verdict import (
    GROUP_UNAVAILABLE,
    FallBack,
    InternalFailure,
    OtherDeployment,
    RetryAfter,
    Verdict,
    Verdicts,
)
from dispatcher.pricing import price_for
from dispatcher.providers.provider_set import ProviderSet
from dispatcher.providers import errors as pe
from dispatcher.providers.base import Completion, Usage
from dispatcher.store.jobs import ClaimedJob
from dispatcher.store.tables import JobStatus

log = logging.getLogger(__name__)


def request_body(job_body: str, deployment: Deployment) -> bytes:
    """The JSON sent to the provider: the stored body with ``model`` set for this deployment.

    Stored bodies never hold ``model`` (the group is a column), so the common case splices
    bytes instead of parsing and re-encoding the body.
    """
    if deployment.body_defaults:
        body = {**deployment.body_defaults, **orjson.loads(job_body)}
        body["model"] = deployment.provider_model
        return orjson.dumps(body)
    model = orjson.dumps(deployment.provider_model)
    rest = job_body.encode()[1:]
    separator = b"" if rest.lstrip().startswith(b"}") else b","
    return b'{"model":' + model + separator + rest


class JobRunner:
    """Executes claimed jobs for one worker process."""

    def __init__(
        self,
        *,
        providers: ProviderSet,
        retry_policy: RetryPolicy,
        fallback_policy: FallbackPolicy,
        worker_id: str,
        group_sizes: dict[str, int] | None = None,
        stalls: StallWatch | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self._stalls = stalls
        self._clock = clock  # the database's clock: every time here is stored in SQL
        self._providers = providers
        self._verdicts = Verdicts(retry_policy, fallback_policy, group_sizes or {})
        self._worker_id = worker_id
        self._prices = {}

    async def run(self, job: ClaimedJob, deployment: Deployment) -> Outcome:
        """Call ``deployment`` for ``job`` (its chat completion, or embeddings when the job's
        endpoint says so); the Outcome keeps the completion or error too."""
        started_wall = self._clock()
        started = time.monotonic()
        provider = self._providers.get(deployment.id)
        call = provider.complete if job.endpoint is None else provider.embed  # None: chat
        if self._stalls is not None:
            self._stalls.call_started()
        try:
            completion = await call(request_body(job.body, deployment), deployment.timeout)
        except pe.ProviderError as error:
            ended = time.monotonic()
            latency_ms = (ended - started) * 1000
            if isinstance(error, pe.ProviderTimeoutError) and self._stalled(started, ended):
                return self._stalled_call(job, deployment, started_wall, latency_ms)
            outcome = self._failure(job, deployment, error, started_wall, latency_ms)
            outcome.provider_error = error
            return outcome
        finally:
            if self._stalls is not None:
                self._stalls.call_ended()
        latency_ms = (time.monotonic() - started) * 1000
        outcome = self._success(job, deployment, completion, started_wall, latency_ms)
        outcome.completion = completion
        return outcome

    def _stalled(self, started: float, ended: float) -> bool:
        return self._stalls is not None and self._stalls.stalled_between(started, ended)

    def _stalled_call(
        self, job: ClaimedJob, deployment: Deployment, started_wall: float, latency_ms: float
    ) -> Outcome:
        """A timeout measured across a stall of this process: the provider may well have
        answered meanwhile. The call is on record; the job is queued again without using a
        retry, and no provider error is reported (so no cooldown)."""
        now = self._clock()
        message = (
            "no answer read within the timeout, but this worker process was stopped during the "
            "call (SIGSTOP, a paused VM or a blocked event loop): not counted as a provider timeout"
        )
        log.warning("job %s: %s", job.id, message)
        attempt = AttemptRecord(
            number=job.attempts + 1, model_group=job.model_group, deployment_id=deployment.id,
            worker_id=self._worker_id, started_at=started_wall, ended_at=now,
            latency_ms=latency_ms, outcome="error", error_class="WorkerStalled",
            error_message=message,
        )
        return Outcome(
            job=job, status=JobStatus.QUEUED, finished_at=now, attempt=attempt,
            error_code="worker_stalled", error_message=message, not_before=now,
            retries=job.retries, groups_tried=job.groups_tried,
        )

    def from_cache(self, job: ClaimedJob, body: bytes) -> Outcome:
        """A success answered by the response cache: no provider call, no cost."""
        now = self._clock()
        usage = Usage.from_openai(orjson.loads(body).get("usage"))
        attempt = AttemptRecord(
            number=job.attempts + 1,
            model_group=job.model_group,
            deployment_id=None,
            worker_id=self._worker_id,
            started_at=now,
            ended_at=now,
            latency_ms=0.0,
            outcome="cache_hit",
            status_code=200,
            cost=0.0,
        )
        return Outcome(
            job=job,
            status=JobStatus.SUCCEEDED,
            finished_at=now,
            attempt=attempt,
            response_status=200,
            response=body.decode("utf-8", errors="replace"),
            request_id="cache",
            usage=usage,
            cost=0.0,
            latency_ms=0.0,
        )

    def _cost(self, deployment: Deployment, completion: Completion) -> float | None:
        if completion.usage is None:
            return None
        if deployment.id not in self._prices:
            self._prices[deployment.id] = price_for(deployment)
        price = self._prices[deployment.id]
        return price.cost(completion.usage) if price is not None else None

    def _success(
        self,
        job: ClaimedJob,
        deployment: Deployment,
        completion: Completion,
        started_wall: float,
        latency_ms: float,
    ) -> Outcome:
        now = self._clock()
        cost = self._cost(deployment, completion)
        attempt = AttemptRecord(
            number=job.attempts + 1,
            model_group=job.model_group,
            deployment_id=deployment.id,
            worker_id=self._worker_id,
            started_at=started_wall,
            ended_at=now,
            latency_ms=latency_ms,
            outcome="success",
            status_code=completion.status_code,
            usage=completion.usage,
            cost=cost,
            request_id=completion.request_id,
        )
        return Outcome(
            job=job,
            status=JobStatus.SUCCEEDED,
            finished_at=now,
            attempt=attempt,
            response_status=completion.status_code,
            response=completion.body.decode("utf-8", errors="replace"),
            request_id=completion.request_id,
            deployment_id=deployment.id,
            usage=completion.usage,
            cost=cost,
            latency_ms=latency_ms,
        )

    def _failure(
        self,
        job: ClaimedJob,
        deployment: Deployment,
        error: pe.ProviderError,
        started_wall: float,
        latency_ms: float,
    ) -> Outcome:
        now = self._clock()
        message = redact(error.message) or error.code
        attempt = AttemptRecord(
            number=job.attempts + 1,
            model_group=job.model_group,
            deployment_id=deployment.id,
            worker_id=self._worker_id,
            started_at=started_wall,
            ended_at=now,
            latency_ms=latency_ms,
            outcome="error",
            error_class=error.error_class,
            status_code=error.status_code,
            error_message=message,
            request_id=error.request_id,
        )
        verdict = self._verdicts.verdict(job, error)
        if isinstance(verdict, OtherDeployment):
            log.info("job %s: %s on %s; trying another deployment of %s", job.id, error.code,
                     deployment.id, job.model_group)
            return self._requeue(job, now, 0.0, error.code, message, attempt)
        if isinstance(verdict, RetryAfter):
            log.debug("job %s: %s; retry %d/%d in %.2fs", job.id, error.code, job.retries + 1,
                      verdict.retries_allowed, verdict.seconds)
            return self._requeue(job, now, verdict.seconds, error.code, message, attempt)
        outcome = self._leave_group(job, verdict, error.code, message)
        outcome.attempt = attempt
        if outcome.is_final:
            outcome.response_status = error.status_code
            outcome.response = redact(error.body)
            outcome.request_id = error.request_id
            outcome.deployment_id = deployment.id
            outcome.latency_ms = latency_ms
        return outcome

    def group_unavailable(self, job: ClaimedJob, message: str) -> Outcome:
        """Every deployment of the job's group is cooling down or over budget: the job moves to
        its next fallback group, or fails naming every group tried. No call was made."""
        verdict = self._verdicts.verdict(job, GROUP_UNAVAILABLE)
        return self._leave_group(job, verdict, "group_cooling_down", message)

    def internal_error(self, job: ClaimedJob, exc: Exception) -> Outcome:
        """A dispatcher-side failure before any answer (Redis hiccup, a bug): the job is queued
        again a few times, then fails with the reason; the provider was not called."""
        now = self._clock()
        message = f"dispatcher error: {type(exc).__name__}: {exc}"
        verdict = self._verdicts.verdict(job, InternalFailure(exc))
        if isinstance(verdict, RetryAfter):
            log.warning("job %s: %s; queued again", job.id, message, exc_info=log.isEnabledFor(logging.DEBUG))
            return self._requeue(job, now, verdict.seconds, "internal_error", message)
        log.error("job %s failed inside the dispatcher", job.id, exc_info=exc)
        return Outcome(
            job=job, status=JobStatus.FAILED, finished_at=now, error_code="internal_error",
            error_message=message,
        )

    def _requeue(self, job: ClaimedJob, now: float, delay: float, code: str, message: str,
                 attempt: AttemptRecord | None = None) -> Outcome:
        """Back to the queue of the same group in ``delay`` seconds, one retry used."""
        return Outcome(
            job=job,
            status=JobStatus.QUEUED,
            finished_at=now,
            attempt=attempt,
            error_code=code,
            error_message=message,
            not_before=now + delay,
            retries=job.retries + 1,
            groups_tried=job.groups_tried,
        )

    def _leave_group(self, job: ClaimedJob, verdict: Verdict, code: str, message: str) -> Outcome:
        """The Outcome of a FallBack or Fail verdict."""
        now = self._clock()
        if isinstance(verdict, FallBack):
            log.info("job %s: %s in group %s; falling back to %s", job.id, code, job.model_group, verdict.group)
            return Outcome(
                job=job,
                status=JobStatus.QUEUED,
                finished_at=now,
                error_code=code,
                error_message=message,
                not_before=now,
                next_group=verdict.group,
                retries=0,
                groups_tried=json.dumps(verdict.tried + [verdict.group]),
            )
        tried = verdict.tried
        if len(tried) > 1:
            message = f"{message} (model groups tried: {', '.join(tried)})"
        return Outcome(
            job=job,
            status=JobStatus.FAILED,
            finished_at=now,
            error_code=code,
            error_message=message,
            groups_tried=json.dumps(tried) if len(tried) > 1 else job.groups_tried,
        )
