"""The worker engine: one asyncio loop that keeps hundreds of provider calls in flight.

This module wires the parts and runs them; each part has one reason to change:

    claims.py       the claim loop: hints, slots, capacity first, then claims in priority order
    job_call.py     one job's call: cache, send-time wait (call_grant.py), lease, call, settle
    membership.py   register, heartbeat and lease, take over dead workers, housekeeping
    observers.py    logs and metrics, as observers with named hooks
    writer.py       outcomes written in batches, exactly once per claim
    remote/driver   the provider batch route (dispatcher/remote/): form, upload, create, poll, import
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import time
import uuid
from typing import Iterable

from dispatcher.backends import Backends
from dispatcher.config.schema import DispatcherConfig
from dispatcher.deployments import Deployments
from dispatcher.engine.claims import ClaimLoop
from dispatcher.engine.counters import EngineStats
from dispatcher.engine.db_access import DatabaseAccess
from dispatcher.engine.execution import JobRunner
from dispatcher.engine.fallbacks import FallbackPolicy
from dispatcher.engine.job_call import JobCalls
from dispatcher.engine.membership import Membership
from dispatcher.engine.observers import Observers, observers_for
from dispatcher.engine.outcomes import Outcome
from dispatcher.engine.retry import RetryPolicy
from dispatcher.engine.stalls import StallWatch
from dispatcher.engine.writer import OutcomeWriter
from dispatcher.metrics import Metrics
from dispatcher.providers.provider_set import ProviderSet
from dispatcher.remote.driver import ProviderBatchDriver
from dispatcher.routing.admission import Admission
from dispatcher.routing.stats import REMOTE_STALE_AFTER_S, RoutingStats
from dispatcher.routing.strategies import build_strategy
from dispatcher.signals import FINISHED
from dispatcher.store import jobs as job_sql
from dispatcher.store.clock import DatabaseClock
from dispatcher.store import retention, vacuum
from dispatcher.store.database import Database

log = logging.getLogger(__name__)

STATS_SYNC_INTERVAL_S = 0.5
# An idle worker publishes its routing numbers this often: soon enough that the fleet does not
# drop them as stale. The first claim after idling reads fresh numbers first.
IDLE_STATS_SYNC_S = REMOTE_STALE_AFTER_S * 0.8
OBSERVERS_REFRESH_S = 15.0
IDLE_TIDY_EVERY = 6  # housekeeping rounds (30 s by default)
# An idle worker wakes seldom: each wake-up of a parked thread costs CPU (about 0.2-0.4 ms on
# a virtual machine, as much as the SQL it runs). Looks whose answer cannot change while idle
# (VACUUM due?) wait this many times longer.
IDLE_SLOWDOWN = 10


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


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
        observers: Observers | None = None,
    ):
        settings = config.dispatcher_settings
        self.worker_id = worker_id or new_worker_id()
        self.concurrency = concurrency or settings.worker.concurrency
        self.groups = list(groups) if groups else deployments.groups
        self.stats = EngineStats()
        self.routing_stats = RoutingStats()
        # Every time written to or compared with SQL is on the database's clock (clock.py);
        # local time.time() only for this process's own timers and Redis send times.
        self.clock = DatabaseClock()
        self.started = concurrent.futures.Future()
        self._config = config
        self._settings = settings
        self._deployments = deployments
        self._backends = backends  # where limits, cache, routing numbers and wake messages live
        self._observers = observers or observers_for(self.worker_id, metrics)
        self._db = DatabaseAccess(database)
        self._stopping = False
        self._grace = settings.worker.shutdown_grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_now: asyncio.Event | None = None
        self._claims: ClaimLoop | None = None
        self._stats_synced_at = 0.0  # time.monotonic() of the last routing numbers sync
        self._activity_at_sync: tuple[int, int, int] | None = None
        self._finished_at_vacuum_look = 0  # jobs this worker had ended or requeued at its last look
        self._housekeeping_rounds = 0
        self._looked_at = float("-inf")  # time.monotonic() of the last idle poll's look at SQL

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

    async def run(self) -> None:
        """Run until ``request_stop``; on the way out, finish or hand back every claimed job."""
        self._loop = asyncio.get_running_loop()
        self._stop_now = asyncio.Event()
        self._wire()
        await self._membership.register()
        await self._observers.refresh(self._db.read)  # filled before the first scrape, not after 15 s
        worker = self._settings.worker
        background = [
            asyncio.create_task(self._writer.run(), name="writer"),
            asyncio.create_task(self._every(worker.heartbeat_interval, self._heartbeat)),
            asyncio.create_task(self._stalls.run()),
            asyncio.create_task(self._every(worker.poll_interval, self._poll, idle_seconds=(
                2 * worker.poll_interval if self._heartbeat_polls else None))),
            asyncio.create_task(self._every(self._membership.housekeeping_interval, self._housekeeping)),
            asyncio.create_task(self._every(STATS_SYNC_INTERVAL_S, self._sync_routing_stats_when_due,
                                            idle_seconds=IDLE_STATS_SYNC_S)),
            asyncio.create_task(self._every(OBSERVERS_REFRESH_S, self._refresh_observers)),
        ]
        if self._remote.active:
            background.append(asyncio.create_task(self._remote.run(), name="provider-batches"))
        if self._db.postgres and self._settings.vacuum.enabled:
            interval = self._settings.vacuum.interval
            background.append(asyncio.create_task(
                self._every(interval, self._vacuum, idle_seconds=interval * IDLE_SLOWDOWN)))
        if self._settings.retention.finished_before:
            background.append(asyncio.create_task(self._every(self._settings.retention.interval, self._retention)))
        writer_task = background[0]
        self.started.set_result(self.worker_id)
        for group in self.groups:
            self._hint_local(group)
        try:
            await self._claims.run(writer_task)
        finally:
            await self._shutdown(background, writer_task)

    def _wire(self) -> None:
        """Build the parts; they need the running loop (backends open connections on it)."""
        config, settings, worker = self._config, self._settings, self._settings.worker
        notify_others = self._backends.messaging.notify_quietly
        self._providers = ProviderSet(self._deployments, self.concurrency)
        self._shared = self._backends.engine_state(
            worker_id=self.worker_id, deployment_ids=list(self._deployments.by_id),
            database=self._db.database, run_in_thread=self._db.run,
        )
        self.admission = Admission(
            self._deployments, self._shared.limits,
            build_strategy(config.router_settings.routing_strategy, config.router_settings.routing_strategy_args),
            self.routing_stats, settings.rate_limits, config.router_settings,
            on_cooldown=self._observers.cooldown_started, on_room=self._hint_local,
        )
        fallbacks = FallbackPolicy(config.router_settings)
        self._stalls = StallWatch()
        runner = JobRunner(
            providers=self._providers, retry_policy=RetryPolicy(config.router_settings, settings),
            fallback_policy=fallbacks, worker_id=self.worker_id,
            group_sizes={group: len(members) for group, members in self._deployments.by_group.items()},
            stalls=self._stalls, clock=self.clock.now,
        )
        self._writer = OutcomeWriter(
            self._db.database, self._db.run, self._on_written,
            flush_interval=worker.result_flush_interval, flush_size=worker.result_flush_size,
            clock=self.clock.now,
        )
        self._membership = Membership(
            worker_id=self.worker_id, groups=self.groups, concurrency=self.concurrency,
            settings=worker, db=self._db, clock=self.clock, on_requeued=self._requeued,
        )
        self._remote = ProviderBatchDriver(
            deployments=self._deployments, groups=self.groups, settings=settings.provider_batches,
            db=self._db, clock=self.clock, membership=self._membership, worker_id=self.worker_id,
            on_requeued=self._requeued,
        )
        self._calls = JobCalls(
            runner=runner, cache=self._shared.cache, cache_ttl_s=settings.cache.ttl_s,
            membership=self._membership, routing_stats=self.routing_stats,
            observers=self._observers, writer=self._writer, stats=self.stats, clock=self.clock,
        )
        self._claims = ClaimLoop(
            groups=self.groups, concurrency=self.concurrency, settings=settings,
            admission=self.admission, db=self._db, clock=self.clock, membership=self._membership,
            runner=runner, writer=self._writer, fallbacks=fallbacks, stats=self.stats,
            notify_others=notify_others, start_call=self._calls.start,
            before_claims=self._fresh_routing_numbers,
        )

    def _on_written(self, outcomes: list[Outcome], recorded: set[int]) -> None:
        finished: list[str] = []
        for outcome in outcomes:
            if outcome.job.id in recorded:
                self._observers.outcome_recorded(outcome)
                if outcome.job.awaited and outcome.is_final:
                    finished.append(outcome.job.batch_id)
        if finished:  # its caller is waiting: say so now (a thread: a Redis publish blocks)
            try:
                self._loop.run_in_executor(None, self._backends.signals.publish, FINISHED, finished)
            except RuntimeError:  # shutting down: the caller's own look at SQL finds the result
                log.debug("could not announce %d finished completions", len(finished))
        self._claims.written(outcomes, recorded)

    def _requeued(self, groups: set[str]) -> None:
        """Jobs of these groups are queued again (taken over, or handed back): wake workers."""
        for group in groups:
            self._hint_local(group)
        self._backends.messaging.notify_quietly(groups)

    def _hint_local(self, group: str) -> None:
        if self._claims is not None:
            self._claims.hint(group)

    @property
    def _heartbeat_polls(self) -> bool:
        """An idle worker's heartbeat does its poll: it beats at least as often as it polls."""
        return self._settings.worker.heartbeat_interval <= self._settings.worker.poll_interval

    async def _heartbeat(self) -> None:
        """The heartbeat; it also sees whether another worker is dead (then takes its jobs
        over). An idle worker's also does the idle poll when it beats at least as often as
        it polls (the default): one transaction, one thread woken, not two."""
        worker = self._settings.worker
        look = (
            self._claims.idle
            and self._heartbeat_polls
            and time.monotonic() - self._looked_at >= worker.poll_interval - worker.heartbeat_interval / 2
        )
        ready = await self._membership.renew_lease(look_in=self.groups if look else ())
        if look and ready is not None:
            self._looked_at = time.monotonic()
            for group in ready:
                self._hint_local(group)
        if self._membership.others_dead:
            await self._membership.take_over_dead_workers()

    async def _poll(self) -> None:
        """The idle poll. A worker with nothing to do asks SQL which groups have ready jobs
        before asking admission for capacity (Redis) and claiming (SQL) in each of them.
        When the heartbeat does that, this is its backstop (a heartbeat that could not look)."""
        worker = self._settings.worker
        if not self._claims.idle:
            self._claims.hint_all()
            return
        if self._heartbeat_polls and time.monotonic() - self._looked_at < 2 * worker.poll_interval:
            return
        self._looked_at = time.monotonic()
        for group in await self._db.read(job_sql.ready_groups, groups=self.groups, now=self.clock.now()):
            self._hint_local(group)

    async def _housekeeping(self) -> None:
        """Hand back claims whose reply was lost, and tidy up (completion windows, cost caps,
        half-stored batches, expired uploaded files); dead workers are seen by heartbeats. An
        idle worker does this every IDLE_TIDY_EVERY rounds only: nothing it runs can be a
        stray claim unless a claim failed, and nothing of the tidying is urgent."""
        self._housekeeping_rounds += 1
        if self._claims.idle and not self._claims.reconcile_due and self._housekeeping_rounds % IDLE_TIDY_EVERY:
            return
        await self._claims.reconcile()
        await self._membership.tidy()

    async def _sync_routing_stats_when_due(self) -> None:
        """Every STATS_SYNC_INTERVAL_S while this worker claims or runs calls, and until the
        numbers of its last calls are out; every IDLE_STATS_SYNC_S when idle."""
        stats = self.stats
        activity = (stats.claimed, stats.finished, stats.requeued)
        if (
            not self._claims.idle
            or activity != self._activity_at_sync
            or time.monotonic() - self._stats_synced_at >= IDLE_STATS_SYNC_S
        ):
            self._activity_at_sync = activity
            await self._sync_routing_stats()

    async def _fresh_routing_numbers(self) -> None:
        """Before a claim: numbers as fresh as a busy worker's (an idle one syncs seldom)."""
        if time.monotonic() - self._stats_synced_at > 2 * STATS_SYNC_INTERVAL_S:
            try:
                await self._sync_routing_stats()
            except Exception as exc:  # noqa: BLE001 - stale numbers only skew a choice a little
                log.warning("_sync_routing_stats failed: %s", exc)

    async def _retention(self) -> None:
        """Prune old batches' bodies, when it is this worker's turn (store/retention.py)."""
        pruned = await self._db.run(
            retention.prune_if_my_turn, self._db.database, self._settings.retention, self.clock.now()
        )
        if pruned and pruned.batches:
            log.info("retention: pruned the bodies of %d batches (%d jobs)", len(pruned.batches), pruned.jobs)

    async def _vacuum(self) -> None:
        """VACUUM jobs when it is this worker's turn and it is due (store/vacuum.py).
        On a thread of its own: it may take seconds, which the database threads cannot spare.
        Only a worker that wrote rows since its last look looks: an idle fleet asks nothing."""
        changed = self.stats.finished + self.stats.requeued
        if changed == self._finished_at_vacuum_look:
            return
        self._finished_at_vacuum_look = changed
        started = time.monotonic()
        if await asyncio.to_thread(
            vacuum.vacuum_if_my_turn, self._db.database, self._settings.vacuum, self.clock.now()
        ):
            log.debug("vacuumed the jobs table in %.1f s", time.monotonic() - started)

    async def _sync_routing_stats(self) -> None:
        self._stats_synced_at = time.monotonic()
        specs = [self.admission.specs[d] for d in self._deployments.by_id]
        usages = await self._shared.limits.usage(specs)
        for deployment_id, usage in zip(self._deployments.by_id, usages):
            self.routing_stats.tokens_this_minute[deployment_id] = usage.tokens_this_minute
        await self.admission.budgets.refresh()
        await self._shared.stats.sync(self.routing_stats)

    async def _refresh_observers(self) -> None:
        await self._observers.refresh(self._db.read)

    def _stop_local(self, grace: float | None) -> None:
        if grace is not None:
            self._grace = min(self._grace, grace) if self._stopping else grace
        self._stopping = True
        if self._claims is not None:
            self._claims.stop()
        if self._grace <= 0:
            self._stop_now.set()

    async def _every(self, seconds: float, action, *, idle_seconds: float | None = None) -> None:
        """Run ``action`` every ``seconds``, every ``idle_seconds`` while idle if given (an
        idle worker should wake seldom: each wake-up of a parked thread costs CPU)."""
        while not self._stopping:
            idle = idle_seconds is not None and self._claims.idle and not self._calls.tasks
            await asyncio.sleep(idle_seconds if idle else seconds)
            if self._stopping:
                return
            try:
                await action()
            except Exception as exc:  # noqa: BLE001 - housekeeping must not kill the worker
                log.warning("%s failed: %s", getattr(action, "__name__", action), exc)

    async def _shutdown(self, background: list[asyncio.Task], writer_task: asyncio.Task) -> None:
        self._stopping = True
        tasks = self._calls.tasks
        if tasks:
            log.info("stopping: waiting up to %.0fs for %d calls in flight", self._grace, len(tasks))
            stop_now = asyncio.create_task(self._stop_now.wait())
            deadline = self._loop.time() + self._grace
            while tasks and not stop_now.done():
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                await asyncio.wait([*tasks, stop_now], timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            stop_now.cancel()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._remote.stop(self._grace)
        await self._writer.close()
        try:
            await writer_task
        finally:
            for task in background[1:]:
                task.cancel()
            await asyncio.gather(*background[1:], return_exceptions=True)
            await self._membership.leave()
            await self._providers.aclose()
            await self._shared.aclose()
            self._db.close()
