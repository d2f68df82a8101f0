"""Watching the engine: logs and metrics as observers with named hooks.

The engine calls a hook at each point worth watching and does not care who listens, as
dramatiq's brokers call their middleware. An observer overrides the hooks it needs; the
others do nothing. ``Observers`` calls only the hooks some observer overrides, so an
engine without metrics pays nothing for them.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from dispatcher.engine.outcomes import Outcome
from dispatcher.metrics import Metrics
from dispatcher.store import jobs as job_sql
from dispatcher.store.tables import JobStatus

log = logging.getLogger(__name__)

ReadSql = Callable[..., Awaitable]  # DatabaseAccess.read
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")


class EngineObserver:
    """Every hook, doing nothing. Hooks run on the engine's loop and must not block."""

    def call_started(self, deployment_id: str) -> None:
        """A provider call is about to be sent."""

    def call_ended(self, deployment_id: str, outcome: Outcome | None) -> None:
        """A provider call ended; ``outcome`` is None when nothing was sent after all."""

    def cache_hit(self, group: str) -> None:
        """A job was answered from the response cache."""

    def cooldown_started(self, deployment_id: str) -> None:
        """This worker started a deployment's cooldown."""

    def outcome_recorded(self, outcome: Outcome) -> None:
        """A job's outcome is in the database (finished, retried later or moved)."""

    async def refresh(self, read: ReadSql) -> None:
        """Fleet-wide figures read from the database, at start and every 15 s."""


_HOOKS = ("call_started", "call_ended", "cache_hit", "cooldown_started", "outcome_recorded", "refresh")


class Observers:
    """The observers of one engine, called hook by hook."""

    def __init__(self, observers: list[EngineObserver]):
        for hook in _HOOKS:
            base = getattr(EngineObserver, hook)
            overriding = [getattr(o, hook) for o in observers if getattr(type(o), hook) is not base]
            setattr(self, f"_{hook}", overriding)

    def call_started(self, deployment_id: str) -> None:
        for hook in self._call_started:
            hook(deployment_id)

    def call_ended(self, deployment_id: str, outcome: Outcome | None) -> None:
        for hook in self._call_ended:
            hook(deployment_id, outcome)

    def cache_hit(self, group: str) -> None:
        for hook in self._cache_hit:
            hook(group)

    def cooldown_started(self, deployment_id: str) -> None:
        for hook in self._cooldown_started:
            hook(deployment_id)

    def outcome_recorded(self, outcome: Outcome) -> None:
        for hook in self._outcome_recorded:
            hook(outcome)

    async def refresh(self, read: ReadSql) -> None:
        for hook in self._refresh:
            await hook(read)


class LogObserver(EngineObserver):
    """Logs retries, fallbacks and failures with the job's ids as structured fields."""

    def __init__(self, worker_id: str):
        self._worker_id = worker_id

    def outcome_recorded(self, outcome: Outcome) -> None:
        if outcome.status == JobStatus.SUCCEEDED and not log.isEnabledFor(logging.DEBUG):
            return  # the common case: nothing to log
        job = outcome.job
        context = {
            "batch_id": job.batch_id, "job_id": job.id, "custom_id": job.custom_id,
            "deployment": outcome.attempt.deployment_id if outcome.attempt else None,
            "attempt": outcome.attempts_made, "worker_id": self._worker_id,
        }
        if outcome.status == JobStatus.FAILED:
            log.info("request %s of %s failed: %s: %s", job.custom_id, job.batch_id,
                     outcome.error_code, outcome.error_message, extra=context)
        elif not outcome.is_final:
            if outcome.next_group:
                log.info("request %s of %s: %s; moved to fallback group %s", job.custom_id,
                         job.batch_id, outcome.error_code, outcome.next_group, extra=context)
            else:
                log.debug("request %s of %s: %s; retry %d", job.custom_id, job.batch_id,
                          outcome.error_code, outcome.retries, extra=context)
        else:
            log.debug("request %s of %s succeeded", job.custom_id, job.batch_id, extra=context)


class MetricsObserver(EngineObserver):
    """Counts calls, tokens, cost, retries and cooldowns in Prometheus metrics (metrics.py)."""

    def __init__(self, metrics: Metrics):
        self._metrics = metrics

    def call_started(self, deployment_id: str) -> None:
        self._metrics.in_flight.labels(deployment_id).inc()

    def call_ended(self, deployment_id: str, outcome: Outcome | None) -> None:
        metrics = self._metrics
        metrics.in_flight.labels(deployment_id).dec()
        if outcome is None:
            return
        error = outcome.provider_error
        metrics.requests.labels(deployment_id, "success" if error is None else error.error_class).inc()
        if outcome.latency_ms is not None:
            metrics.latency.labels(deployment_id).observe(outcome.latency_ms / 1000)
        attempt = outcome.attempt
        if attempt is not None and attempt.usage is not None:
            metrics.tokens.labels(deployment_id, "prompt").inc(attempt.usage.prompt_tokens)
            metrics.tokens.labels(deployment_id, "completion").inc(attempt.usage.completion_tokens)
        if attempt is not None and attempt.cost:
            metrics.cost.labels(deployment_id).inc(attempt.cost)
        if error is not None and error.status_code == 429:
            metrics.rate_limited.labels(deployment_id).inc()

    def cache_hit(self, group: str) -> None:
        self._metrics.cache_hits.labels(group).inc()

    def cooldown_started(self, deployment_id: str) -> None:
        self._metrics.cooldowns.labels(deployment_id).inc()

    def outcome_recorded(self, outcome: Outcome) -> None:
        metrics, group = self._metrics, outcome.job.model_group
        if outcome.is_final:
            metrics.jobs_finished.labels(group, outcome.status).inc()
        elif outcome.next_group:
            metrics.fallbacks.labels(group, outcome.next_group).inc()
        else:
            metrics.retries.labels(group).inc()

    async def refresh(self, read: ReadSql) -> None:
        states = await read(job_sql.counts_by_state)
        depths = await read(job_sql.queue_depth)
        for state in JOB_STATES:
            self._metrics.jobs_by_state.labels(state).set(states.get(state, 0))
        self._metrics.set_queue_depth(depths)


def observers_for(worker_id: str, metrics: Metrics | None) -> Observers:
    return Observers([LogObserver(worker_id)] + ([MetricsObserver(metrics)] if metrics is not None else []))
