"""One claimed job's call: the response cache, the wait for its send time, the lease, the
provider call, settling the grant. Every way through ends in one Outcome for the writer."""

from __future__ import annotations

import asyncio
import logging

from dispatcher.cache import cache_key, cacheable
from dispatcher.engine.call_grant import CallGrant
from dispatcher.engine.counters import EngineStats
from dispatcher.engine.execution import JobRunner
from dispatcher.engine.membership import Membership
from dispatcher.engine.observers import Observers
from dispatcher.engine.outcomes import Outcome
from dispatcher.engine.writer import OutcomeWriter
from dispatcher.providers.send_permit import SendWithdrawn, send_permit
from dispatcher.routing.stats import RoutingStats
from dispatcher.store.clock import DatabaseClock
from dispatcher.store.jobs import ClaimedJob
from dispatcher.store.tables import JobStatus

log = logging.getLogger(__name__)


class JobCalls:
    """Starts and runs the calls of one engine's claimed jobs, each as its own task."""

    def __init__(
        self, *, runner: JobRunner, cache, cache_ttl_s: float | None, membership: Membership,
        routing_stats: RoutingStats, observers: Observers, writer: OutcomeWriter,
        stats: EngineStats, clock: DatabaseClock,
    ):
        self._runner = runner
        self._cache = cache
        self._cache_ttl_s = cache_ttl_s
        self._membership = membership
        self._routing_stats = routing_stats
        self._observers = observers
        self._writer = writer
        self._stats = stats
        self._clock = clock
        self.tasks: set[asyncio.Task] = set()

    def start(self, job: ClaimedJob, grant: CallGrant, epoch: int) -> None:
        stats = self._stats
        stats.claimed += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        task = asyncio.get_running_loop().create_task(self._run(job, grant, epoch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, job: ClaimedJob, grant: CallGrant, epoch: int) -> None:
        outcome = None
        try:
            key = cache_key(job.model_group, job.body) if _uses_cache(job) else None
            if key is not None and (cached := await self._cache.get(key)) is not None:
                outcome = self._runner.from_cache(job, cached)
                await grant.release()
                self._observers.cache_hit(job.model_group)
            else:
                await grant.due()
                outcome = await self._call(job, grant, epoch)
                if outcome is None:
                    outcome = self._not_sent(job)  # first: the release below may fail
                    await grant.release()
                else:
                    await grant.settle(job, outcome)
                    if key is not None and outcome.completion is not None:
                        await self._cache.put(key, outcome.completion.body, self._cache_ttl_s)
        except asyncio.CancelledError:
            self._stats.in_flight -= 1
            raise
        except Exception as exc:  # not a provider error: keep the worker, and the job if we can
            if outcome is not None:  # the provider answered: its result stands
                log.exception("job %s: bookkeeping after the call failed; the result is kept", job.id)
            else:
                outcome = self._runner.internal_error(job, exc)
        finally:
            grant.close()
        self._stats.in_flight -= 1
        self._writer.add(outcome)

    async def _call(self, job: ClaimedJob, grant: CallGrant, epoch: int) -> Outcome | None:
        """The provider call, or None when this worker cannot prove the job is still its own."""
        if not await self._membership.holds_lease(epoch):
            return None
        deployment_id = grant.deployment.id
        outcome = None
        self._routing_stats.call_started(deployment_id)
        self._observers.call_started(deployment_id)
        try:
            # Asked again right before the request is written: a pause after the check
            # above must not send a job taken over meanwhile.
            with send_permit(lambda: self._membership.may_send(epoch)):
                outcome = await self._runner.run(job, grant.deployment)
        except SendWithdrawn:
            pass
        finally:
            latency = outcome.latency_ms if outcome is not None and outcome.completion else None
            self._routing_stats.call_ended(deployment_id, latency)
            self._observers.call_ended(deployment_id, outcome)
        return outcome

    def _not_sent(self, job: ClaimedJob) -> Outcome:
        """The job goes back to the queue unsent: this worker cannot prove it still holds it.
        If it was taken over meanwhile, the claim fence drops this (the new holder runs it)."""
        log.warning("job %s: this worker's lease is not confirmed (frozen, or its heartbeat "
                    "failed); the call is not sent and the job is handed back", job.id)
        now = self._clock.now()
        return Outcome(job=job, status=JobStatus.QUEUED, finished_at=now, not_before=now,
                       retries=job.retries, groups_tried=job.groups_tried)


def _uses_cache(job: ClaimedJob) -> bool:
    return bool(job.cache_mode) and cacheable(job.cache_mode, job.body)
