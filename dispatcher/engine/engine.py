"""The worker engine: one asyncio loop that keeps hundreds of provider calls in flight.

It claims jobs from SQL in priority order when it has free slots, runs each claimed job
as a task, and hands outcomes to the batched writer. It learns that work exists from hints
(dramatiq wake messages, retry timers) and, as a safety net, from a slow idle poll, so a
lost message only delays work, never loses it. It also heartbeats, and takes over the jobs
of workers whose heartbeat stopped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Iterable

from dispatcher.backends import Backends
from dispatcher.cache import cache_key, cacheable
from dispatcher.config.schema import DispatcherConfig
from dispatcher.deployments import Deployments
from dispatcher.engine.booked import BookedCall, BookedCalls
from dispatcher.engine.execution import JobRunner
from dispatcher.engine.fallbacks import FallbackPolicy
from dispatcher.engine.lease import Lease
from dispatcher.engine.outcomes import Outcome
from dispatcher.engine.retry import RetryPolicy
from dispatcher.engine.stalls import StallWatch
from dispatcher.engine.writer import OutcomeWriter
from dispatcher.errors import ServiceUnavailableError, is_transient
from dispatcher.providers.provider_set import ProviderSet
from dispatcher.providers.send_permit import SendWithdrawn, send_permit
from dispatcher.limits.backend import Blocked
from dispatcher.metrics import Metrics
from dispatcher.pricing import price_for
from dispatcher.routing.admission import Admission, Grant
from dispatcher.routing.stats import RoutingStats
from dispatcher.routing.strategies import build_strategy
from dispatcher.store import batches as batch_sql
from dispatcher.store import jobs as job_sql
from dispatcher.store import workers as worker_sql
from dispatcher.store.clock import DatabaseClock
from dispatcher.store.database import Database
from dispatcher.store.handback import hand_back_unowned, release_worker_jobs
from dispatcher.store.jobs import ClaimedJob
from dispatcher.store.tables import JobStatus

log = logging.getLogger(__name__)

STATS_SYNC_INTERVAL_S = 0.5
METRICS_REFRESH_S = 15.0
TOKEN_ESTIMATE_WEIGHT = 0.2


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class EngineStats:
    claimed: int = 0
    finished: int = 0
    requeued: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    rebooked: int = 0
    moved_forward: int = 0  # urgent calls given an earlier booked send time


class Engine:
    """Claims, runs and records jobs for one worker process."""

    def __init__(
        self,
        *,
        config: DispatcherConfig,
        deployments: Deployments,
        database: Database,
        backends: Backends,
        worker_id: str | None = None,
        concurrency: int | None = None,
        groups: Iterable[str] | None = None,
        metrics: Metrics | None = None,
    ):
        settings = config.dispatcher_settings
        self.worker = settings.worker
        self.worker_id = worker_id or new_worker_id()
        self.concurrency = concurrency or self.worker.concurrency
        self.groups = list(groups) if groups else deployments.groups
        self._config = config
        self._deployments = deployments
        self._database = database
        self._backends = backends  # where limits, cache, routing numbers and wake messages live
        self._notify_others = backends.messaging.notify_quietly
        self._settings = settings
        self.metrics = metrics
        self._strategy = build_strategy(
            config.router_settings.routing_strategy, config.router_settings.routing_strategy_args
        )
        self.routing_stats = RoutingStats()
        self._retry = RetryPolicy(config.router_settings, settings)
        self._fallbacks = FallbackPolicy(config.router_settings)
        self._token_estimates: dict[str, float] = {}
        self._prices: dict = {}
        self._wake_timers: dict[str, asyncio.TimerHandle] = {}
        self._booked = BookedCalls()
        self.stats = EngineStats()
        self._free = self.concurrency
        self._hot: dict[str, None] = {}
        self._tasks: set[asyncio.Task] = set()
        # Job id -> claim of every job this engine runs or has an unwritten outcome for: what
        # SQL says it runs beyond this came from a claim whose reply was lost (_reconcile).
        self._owned: dict[int, int] = {}
        self._reconcile_due = False
        self._lease = Lease(self.worker.dead_after)
        # Every time written to or compared with SQL is on the database's clock (clock.py);
        # local time.time() only for this process's own timers and Redis send times.
        self.clock = DatabaseClock()
        self._renewing: asyncio.Future | None = None
        self._stalls = StallWatch()
        self._stopping = False
        self._grace = self.worker.shutdown_grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop_now: asyncio.Event | None = None
        self._db_threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="llmd-db"
        )
        self.started = concurrent.futures.Future()

    # -- called from other threads -------------------------------------------------------

    def hint(self, group: str) -> None:
        """Work may be ready in ``group`` (thread-safe; cheap; duplicates are harmless)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._hint_local, group)

    def request_stop(self, grace: float | None = None) -> None:
        """Stop claiming; let in-flight calls finish within ``grace`` seconds (thread-safe)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop_local, grace)

    # -- the loop ------------------------------------------------------------------------

    async def _db(self, fn, *args, **kwargs):
        return await self._loop.run_in_executor(
            self._db_threads, functools.partial(fn, *args, **kwargs)
        )

    def _write_tx(self, fn, **kwargs):
        with self._database.write() as connection:
            return fn(connection, **kwargs)

    def _read_tx(self, fn, **kwargs):
        with self._database.read() as connection:
            return fn(connection, **kwargs)

    async def run(self) -> None:
        """Run until ``request_stop``; on the way out, finish or hand back every claimed job."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop_now = asyncio.Event()
        self._claim_lock = asyncio.Lock()  # claims and _reconcile never overlap
        self._providers = ProviderSet(self._deployments, self.concurrency)
        self._shared = self._backends.engine_state(
            worker_id=self.worker_id, deployment_ids=list(self._deployments.by_id),
            database=self._database, run_in_thread=self._db,
        )
        self._limits, self._cache = self._shared.limits, self._shared.cache
        self.admission = Admission(
            self._deployments, self._limits, self._strategy, self.routing_stats,
            self._settings.rate_limits, self._config.router_settings,
            on_cooldown=self._on_cooldown, on_room=self._hint_local,
        )
        self._runner = JobRunner(
            providers=self._providers,
            retry_policy=self._retry,
            fallback_policy=self._fallbacks,
            worker_id=self.worker_id,
            group_sizes={group: len(members) for group, members in self._deployments.by_group.items()},
            stalls=self._stalls,
            clock=self.clock.now,
        )
        self._writer = OutcomeWriter(
            self._database,
            self._db,
            self._on_written,
            flush_interval=self.worker.result_flush_interval,
            flush_size=self.worker.result_flush_size,
            clock=self.clock.now,
        )
        await self._register()
        if self.metrics is not None:  # filled before the first scrape, not after 15 s
            await self._refresh_gauges()
        background = [
            asyncio.create_task(self._writer.run(), name="writer"),
            asyncio.create_task(self._every(self.worker.heartbeat_interval, self._renew_lease)),
            asyncio.create_task(self._stalls.run()),
            asyncio.create_task(self._every(self.worker.poll_interval, self._poll)),
            asyncio.create_task(self._every(self._reap_interval(), self._housekeeping)),
            asyncio.create_task(self._every(STATS_SYNC_INTERVAL_S, self._sync_routing_stats)),
        ]
        if self.metrics is not None:
            background.append(asyncio.create_task(self._every(METRICS_REFRESH_S, self._refresh_gauges)))
        writer_task = background[0]
        self.started.set_result(self.worker_id)
        for group in self.groups:
            self._hint_local(group)
        try:
            await self._claim_loop(writer_task)
        finally:
            await self._shutdown(background, writer_task)

    async def _sync_routing_stats(self) -> None:
        specs = [self.admission.specs[d] for d in self._deployments.by_id]
        usages = await self._limits.usage(specs)
        for deployment_id, usage in zip(self._deployments.by_id, usages):
            self.routing_stats.tokens_this_minute[deployment_id] = usage.tokens_this_minute
        await self.admission.budgets.refresh()
        await self._shared.stats.sync(self.routing_stats)

    async def _refresh_gauges(self) -> None:
        states = await self._db(self._read_tx, job_sql.counts_by_state)
        depths = await self._db(self._read_tx, job_sql.queue_depth)
        for state in ("queued", "running", "succeeded", "failed", "cancelled", "expired"):
            self.metrics.jobs_by_state.labels(state).set(states.get(state, 0))
        self.metrics.set_queue_depth(depths)

    def _reap_interval(self) -> float:
        return max(self.worker.heartbeat_interval, self.worker.dead_after / 3)

    async def _claim_loop(self, writer_task: asyncio.Task) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if writer_task.done():
                writer_task.result()  # surface a writer crash instead of claiming forever
            await self._fill_slots()

    async def _fill_slots(self) -> None:
        while self._free > 0 and self._hot and not self._stopping:
            for group in list(self._hot):
                if self._free <= 0 or self._stopping:
                    return
                try:
                    async with self._claim_lock:
                        if self._reconcile_due:
                            await self._reconcile()
                        await self._admit_and_claim(group)
                except Exception as exc:  # noqa: BLE001
                    if not is_transient(exc):
                        raise
                    # The claim may have committed with its reply lost: check before claiming again.
                    self._reconcile_due = True
                    log.warning("cannot claim jobs of %s (%s); retrying in 1s", group, exc)
                    self._hot.pop(group, None)
                    self._hint_at(group, time.time() + 1.0)

    async def _admit_and_claim(self, group: str) -> None:
        """Reserve capacity first, then claim that many of the group's most urgent jobs."""
        if not await self._holds_lease(self._lease.epoch):
            raise ServiceUnavailableError("this worker's heartbeat is not confirmed; not claiming")
        wanted = min(self._free, self.worker.claim_batch)
        grants = await self.admission.acquire(group, wanted, self._token_estimate(group))
        if isinstance(grants, Blocked):
            if grants.reason in ("cooldown", "budget") and self._moves_cooled_jobs(group):
                await self._move_to_fallbacks(group, wanted)
                return
            self._hot.pop(group, None)  # no busy polling: come back when capacity frees
            self._hint_at(group, grants.until)
            return
        if not grants:
            self._hot.pop(group, None)
            return
        # Usually every grant is on one deployment; with max_parallel_requests they may spread.
        by_deployment: dict[str, list[Grant]] = {}
        for grant in grants:
            by_deployment.setdefault(grant.deployment.id, []).append(grant)
        for share in by_deployment.values():
            await self._claim_for(group, share)

    async def _claim_for(self, group: str, grants: list[Grant]) -> None:
        """Claim one job per grant (all on one deployment) and start them."""
        deployment = grants[0].deployment
        price = self._price(deployment)
        epoch = self._lease.epoch  # before the claim: a lease lost meanwhile covers these jobs
        try:
            claimed = await self._db(
                self._write_tx,
                job_sql.claim_jobs,
                group=group,
                limit=len(grants),
                worker_id=self.worker_id,
                now=self.clock.now(),
                postgres=not self._database.is_sqlite,
                input_price=price.input_per_token if price else 0.0,
                output_price=price.output_per_token if price else 0.0,
                deployment_id=deployment.id,
            )
        except Exception:
            self.admission.done(grants)
            await self._release_quietly(grants)
            raise
        if len(claimed) < len(grants):
            self._hot.pop(group, None)
            unused = grants[len(claimed):]
            self.admission.done(unused)
            await self.admission.release(unused)
            grants = grants[: len(claimed)]
        needs = [
            self.admission.booking(deployment, job.est_prompt_tokens, job.est_completion_tokens)
            for job in claimed
        ]
        delays = await self.admission.resize(grants, needs) if claimed else []
        for need in needs:
            self._learn_token_need(group, need)
        for job, grant, delay in zip(claimed, grants, delays):
            self._start(job, grant, delay, epoch)

    async def _release_quietly(self, grants: list[Grant]) -> None:
        try:
            await self.admission.release(grants)
        except Exception as exc:  # noqa: BLE001 - the booking lapses on its own
            log.debug("could not give back %d grants: %s", len(grants), exc)

    def _price(self, deployment):
        if deployment.id not in self._prices:
            self._prices[deployment.id] = price_for(deployment)
        return self._prices[deployment.id]

    def _moves_cooled_jobs(self, group: str) -> bool:
        return self._settings.when_group_cooling == "fallback" and bool(
            self._fallbacks.candidates(group, None)
        )

    async def _move_to_fallbacks(self, group: str, wanted: int) -> None:
        """Every deployment of ``group`` is cooling down: hand its jobs to its fallbacks."""
        claimed = await self._db(
            self._write_tx,
            job_sql.claim_jobs,
            group=group,
            limit=wanted,
            worker_id=self.worker_id,
            now=self.clock.now(),
            postgres=not self._database.is_sqlite,
        )
        if len(claimed) < wanted:
            self._hot.pop(group, None)
        for job in claimed:
            self._free -= 1
            self._owned[job.id] = job.claim
            self._writer.add(self._runner.group_unavailable(
                job, f"every deployment of model group '{group}' is cooling down or over budget"
            ))

    def _token_estimate(self, group: str) -> int:
        return int(self._token_estimates.get(group, self._settings.default_max_tokens + 100))

    def _learn_token_need(self, group: str, need: int) -> None:
        current = self._token_estimates.get(group)
        self._token_estimates[group] = (
            need if current is None else current + TOKEN_ESTIMATE_WEIGHT * (need - current)
        )

    def _hint_at(self, group: str, when: float) -> None:
        """Hint ``group`` at ``when`` (local clock); keeps only the earliest pending timer."""
        existing = self._wake_timers.get(group)
        delay = max(0.0, when - time.time())
        if existing is not None and not existing.cancelled():
            if existing.when() <= self._loop.time() + delay:
                return
            existing.cancel()
        self._wake_timers[group] = self._loop.call_later(delay, self._timer_hint, group)

    def _timer_hint(self, group: str) -> None:
        self._wake_timers.pop(group, None)
        self._hint_local(group)

    def _start(self, job: ClaimedJob, grant: Grant, delay: float, epoch: int) -> None:
        self._free -= 1
        self._owned[job.id] = job.claim
        self.stats.claimed += 1
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        task = self._loop.create_task(self._run_job(job, grant, delay, epoch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, job: ClaimedJob, grant: Grant, delay: float, epoch: int) -> None:
        held = [grant]  # the grant this task holds a deployment place with (None while rebooking)
        outcome = None
        try:
            cache_key = self._cache_key(job)
            if cache_key is not None:
                cached = await self._cache.get(cache_key)
                if cached is not None:
                    await self.admission.release([grant])
                    self.stats.in_flight -= 1
                    if self.metrics is not None:
                        self.metrics.cache_hits.labels(job.model_group).inc()
                    self._writer.add(self._runner.from_cache(job, cached))
                    return
            grant = await self._wait_for_send_time(held, delay, job.priority)
            sent = False
            if await self._holds_lease(epoch):
                deployment = grant.deployment
                self.routing_stats.call_started(deployment.id)
                if self.metrics is not None:
                    self.metrics.in_flight.labels(deployment.id).inc()
                try:
                    # Checked again right before the request is written: a pause after the
                    # check above must not send a job taken over meanwhile.
                    with send_permit(lambda: self._lease.fresh() and self._lease.epoch == epoch):
                        outcome = await self._runner.run(job, deployment)
                    sent = True
                except SendWithdrawn:
                    pass
                finally:
                    latency = outcome.latency_ms if outcome is not None and outcome.completion else None
                    self.routing_stats.call_ended(deployment.id, latency)
                    if self.metrics is not None:
                        self.metrics.in_flight.labels(deployment.id).dec()
            if not sent:
                outcome = self._not_sent(job)  # first: the release below may fail
                await self.admission.release([grant])
            else:
                if self.metrics is not None:
                    self._count_call(deployment.id, outcome)
                await self._settle(job, grant, outcome)
                if cache_key is not None and outcome.completion is not None:
                    await self._cache.put(cache_key, outcome.completion.body, self._settings.cache.ttl_s)
        except asyncio.CancelledError:
            self.stats.in_flight -= 1
            raise
        except Exception as exc:  # not a provider error: keep the worker, and the job if we can
            if outcome is not None:  # the provider answered: its result stands
                log.exception("job %s: bookkeeping after the call failed; the result is kept", job.id)
            else:
                outcome = self._runner.internal_error(job, exc)
        finally:
            if held[0] is not None:
                self.admission.done(held)
        self.stats.in_flight -= 1
        self._writer.add(outcome)

    def _not_sent(self, job: ClaimedJob) -> Outcome:
        """The job goes back to the queue unsent: this worker cannot prove it still holds it.
        If it was taken over meanwhile, the claim fence drops this (the new holder runs it)."""
        log.warning("job %s: this worker's lease is not confirmed (frozen, or its heartbeat "
                    "failed); the call is not sent and the job is handed back", job.id)
        now = self.clock.now()
        return Outcome(job=job, status=JobStatus.QUEUED, finished_at=now, not_before=now,
                       retries=job.retries, groups_tried=job.groups_tried)

    def _on_cooldown(self, deployment_id: str) -> None:
        if self.metrics is not None:
            self.metrics.cooldowns.labels(deployment_id).inc()

    def _count_call(self, deployment_id: str, outcome: Outcome) -> None:
        metrics = self.metrics
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

    def _cache_key(self, job: ClaimedJob) -> str | None:
        if job.cache_mode and cacheable(job.cache_mode, job.body):
            return cache_key(job.model_group, job.body)
        return None

    async def _wait_for_send_time(self, held: list[Grant | None], delay: float, priority: int) -> Grant:
        """Sleep until the booked send time and return the grant to send under.

        A more urgent call may take this one's earlier send time meanwhile (BookedCalls), and
        this one may take a less urgent call's. If a 429 paused the deployment meanwhile, wait
        out the pause and book again rather than send into it. If this process woke up too late
        (an overloaded loop), book again too: sending late would crowd the calls booked after
        this one. ``held[0]`` is the grant the task holds at every moment (None while it books
        again).
        """
        settings = self._settings.rate_limits
        grant = held[0]
        while True:
            if grant.spec.limited:
                call = BookedCall(priority, grant, delay)
                if self._booked.move_forward(call):
                    self.stats.moved_forward += 1
                self._booked.add(call)
                try:
                    # Re-read the due time after each sleep: another call may have swapped slots.
                    while (wait := call.due - time.time()) > 0:
                        await asyncio.sleep(wait)
                finally:
                    self._booked.discard(call)
            elif (wait := grant.send_at + delay - time.time()) > 0:
                await asyncio.sleep(wait)
            due = grant.send_at + delay
            paused = self.admission.pause_remaining(grant)
            late = time.time() - due > settings.late_tolerance_s and grant.spec.limited
            if paused <= 0 and not late:
                return grant
            self.admission.done(held)
            held[0] = None
            if paused > 0:
                await asyncio.sleep(paused)
            renewed = await self.admission.renew(grant)
            while isinstance(renewed, Blocked):
                await asyncio.sleep(max(0.01, renewed.until - time.time()))
                renewed = await self.admission.renew(grant)
            grant, delay = renewed, 0.0
            held[0] = grant
            self.stats.rebooked += 1

    async def _settle(self, job: ClaimedJob, grant: Grant, outcome: Outcome) -> None:
        try:
            await self.admission.settle(
                grant,
                completion=outcome.completion,
                error=outcome.provider_error,
                est_prompt_tokens=job.est_prompt_tokens,
                est_completion_tokens=job.est_completion_tokens,
                cost=outcome.attempt.cost if outcome.attempt is not None else None,
            )
        except Exception as exc:  # noqa: BLE001 - the result matters more than the bookkeeping
            log.warning("could not settle the rate-limit reservation of job %s: %s", job.id, exc)

    def _on_written(self, outcomes: list[Outcome], recorded: set[int]) -> None:
        self._free += len(outcomes)
        now = self.clock.now()  # not_before is on the database's clock
        for outcome in outcomes:
            if self._owned.get(outcome.job.id) == outcome.job.claim:
                del self._owned[outcome.job.id]
            if outcome.job.id in recorded:
                self._report(outcome)
            if outcome.job.cost_capped:  # its reservation is freed: held-back jobs may fit now
                self._hint_local(outcome.job.model_group)
            if outcome.is_final:
                self.stats.finished += 1
            elif outcome.job.id in recorded:
                self.stats.requeued += 1
                group = outcome.next_group or outcome.job.model_group
                if group in self.groups:
                    self._loop.call_later(max(0.0, outcome.not_before - now), self._hint_local, group)
                else:  # a fallback group this worker does not serve
                    self._notify_others({group})
        self._wake.set()

    def _report(self, outcome: Outcome) -> None:
        """Log and count one recorded outcome (logs carry the job's ids as structured fields)."""
        job = outcome.job
        metrics = self.metrics
        if outcome.status == JobStatus.SUCCEEDED and metrics is None and not log.isEnabledFor(logging.DEBUG):
            return  # the common case: nothing to log or count
        context = {
            "batch_id": job.batch_id, "job_id": job.id, "custom_id": job.custom_id,
            "deployment": outcome.attempt.deployment_id if outcome.attempt else None,
            "attempt": outcome.attempts_made, "worker_id": self.worker_id,
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
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("request %s of %s succeeded", job.custom_id, job.batch_id, extra=context)
        if metrics is not None:
            if outcome.is_final:
                metrics.jobs_finished.labels(job.model_group, outcome.status).inc()
            elif outcome.next_group:
                metrics.fallbacks.labels(job.model_group, outcome.next_group).inc()
            else:
                metrics.retries.labels(job.model_group).inc()

    def _hint_local(self, group: str) -> None:
        # Wake messages reach every worker; one started with --groups serves only those.
        if group in self.groups and not self._stopping:
            self._hot[group] = None
            self._wake.set()

    def _stop_local(self, grace: float | None) -> None:
        if grace is not None:
            self._grace = min(self._grace, grace) if self._stopping else grace
        self._stopping = True
        self._wake.set()
        if self._grace <= 0:
            self._stop_now.set()

    async def _every(self, seconds: float, action) -> None:
        while not self._stopping:
            await asyncio.sleep(seconds)
            if self._stopping:
                return
            try:
                await action()
            except Exception as exc:  # noqa: BLE001 - housekeeping must not kill the worker
                log.warning("%s failed: %s", getattr(action, "__name__", action), exc)

    async def _register(self) -> None:
        sent = time.monotonic()
        reading = await self._db(
            self._write_tx,
            worker_sql.register_worker,
            worker_id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            concurrency=self.concurrency,
            groups=self.groups,
        )
        self.clock.learn(reading)
        self._lease.confirm(sent)

    async def _renew_lease(self) -> None:
        """Heartbeat now; concurrent callers share one heartbeat."""
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.ensure_future(self._heartbeat())
        await asyncio.shield(self._renewing)

    async def _heartbeat(self) -> None:
        sent = time.monotonic()
        reading = await self._db(self._write_tx, worker_sql.heartbeat, worker_id=self.worker_id)
        if reading is not None:
            self.clock.learn(reading)
            self._lease.confirm(sent)
            return
        log.warning(
            "this worker was declared dead by another one (its jobs were handed over; the calls "
            "not sent yet are dropped); registering again"
        )
        self._lease.lost()
        await self._register()

    async def _holds_lease(self, epoch: int) -> bool:
        """Can this worker prove it still holds the jobs it claimed in ``epoch``? Renews a
        stale lease first (after a freeze, or when heartbeats failed)."""
        if not self._lease.fresh():
            try:
                await self._renew_lease()
            except Exception as exc:  # noqa: BLE001 - unproven: the caller does not send
                log.warning("cannot confirm this worker's heartbeat: %s", exc)
                return False
        return self._lease.fresh() and self._lease.epoch == epoch

    async def _reconcile(self) -> None:
        """Hand back the jobs SQL says this worker runs but it does not: a claim whose COMMIT
        reply was lost committed without the engine knowing (call with _claim_lock held)."""
        released = await self._db(
            self._write_tx, hand_back_unowned, worker_id=self.worker_id, owned=dict(self._owned),
            postgres=not self._database.is_sqlite,
        )
        self._reconcile_due = False
        if released:
            groups = {group for _, group in released}
            log.warning("%d jobs claimed by a transaction whose reply was lost are queued again",
                        len(released))
            for group in groups:
                self._hint_local(group)
            self._notify_others(groups)

    async def _poll(self) -> None:
        if self._free > 0:
            for group in self.groups:
                self._hint_local(group)

    async def _housekeeping(self) -> None:
        """Take over dead workers' jobs, hand back claims whose reply was lost, and expire jobs
        past their completion window."""
        await self._reap_dead_workers()
        async with self._claim_lock:
            await self._reconcile()
        expired = await self._db(self._write_tx, batch_sql.expire_due, now=self.clock.now())
        if expired:
            log.info("completion window passed for jobs of %d batch(es)", len(expired))
        await self._db(self._write_tx, batch_sql.stop_at_cost_cap, batch_ids=None, now=self.clock.now())
        # Batches whose submit died mid-store: their jobs never ran; end them, free their keys.
        for batch_id, status in await self._db(self._write_tx, batch_sql.abandon_stale_storing):
            log.warning("batch %s was left half-stored by a submit that stopped; it is now %s", batch_id, status)

    async def _reap_dead_workers(self) -> None:
        if not self._lease.may_reap():
            return  # this worker's own heartbeat is not steady: it cannot judge others'
        now = self.clock.now()
        dead = await self._db(
            self._read_tx, worker_sql.dead_workers, dead_after=self.worker.dead_after
        )
        for worker_id in dead:
            if worker_id == self.worker_id:
                continue
            released = await self._db(
                self._write_tx,
                worker_sql.reap_worker,
                worker_id=worker_id,
                now=now,
                reason=f"worker {worker_id} stopped sending heartbeats",
                max_worker_deaths=self.worker.max_worker_deaths,
            )
            if released:
                groups = {group for _, _, group, _ in released}
                log.warning(
                    "worker %s is dead; %d of its jobs are queued again", worker_id, len(released)
                )
                for group in groups:
                    self._hint_local(group)
                self._notify_others(groups)

    async def _shutdown(self, background: list[asyncio.Task], writer_task: asyncio.Task) -> None:
        self._stopping = True
        if self._tasks:
            log.info(
                "stopping: waiting up to %.0fs for %d calls in flight", self._grace, len(self._tasks)
            )
            stop_now = asyncio.create_task(self._stop_now.wait())
            deadline = time.monotonic() + self._grace
            while self._tasks and not stop_now.done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                await asyncio.wait(
                    [*self._tasks, stop_now], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            stop_now.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._writer.close()
        try:
            await writer_task
        finally:
            for task in background[1:]:
                task.cancel()
            await asyncio.gather(*background[1:], return_exceptions=True)
            released = await self._db(
                self._write_tx,
                release_worker_jobs,
                worker_id=self.worker_id,
                now=self.clock.now(),
                reason="worker stopped before the call finished",
            )
            if released:
                log.info("handed %d unfinished jobs back to the queue", len(released))
                self._notify_others({group for _, _, group, _ in released})
            await self._db(
                self._write_tx, worker_sql.mark_stopped, worker_id=self.worker_id, now=self.clock.now()
            )
            await self._providers.aclose()
            await self._shared.aclose()
            self._db_threads.shutdown(wait=False)
