"""The claim loop: free slots and a hinted group -> capacity first, then that many jobs.

It learns that a group may have work from hints (wake messages, retry timers, a call that
freed a place, a slow idle poll), so a lost message only delays work, never loses it. For
each hinted group it asks admission for send times, claims one job per grant in priority
order, and starts each job's call. A group without capacity holds no slot and is hinted
again when the backend says it will have room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from dispatcher.config.schema import DispatcherSettings
from dispatcher.scheduling.urgent import BookedCalls
from dispatcher.engine.call_grant import CallGrant
from dispatcher.engine.counters import EngineStats
from dispatcher.engine.db_access import DatabaseAccess
from dispatcher.engine.execution import JobRunner
from dispatcher.engine.fallbacks import FallbackPolicy
from dispatcher.engine.membership import Membership
from dispatcher.engine.outcomes import Outcome
from dispatcher.engine.writer import OutcomeWriter
from dispatcher.errors import ServiceUnavailableError, is_transient
from dispatcher.limits.backend import Blocked
from dispatcher.limits.spec import TokenBooking
from dispatcher.pricing import price_for
from dispatcher.priority import URGENT_PRIORITY_MAX
from dispatcher.routing.admission import Admission, Grant
from dispatcher.store import jobs as job_sql
from dispatcher.store.clock import DatabaseClock
from dispatcher.store.handback import hand_back_unowned
from dispatcher.store.jobs import ClaimedJob

log = logging.getLogger(__name__)

TOKEN_ESTIMATE_WEIGHT = 0.2
CLAIM_RETRY_S = 1.0

StartCall = Callable[[ClaimedJob, CallGrant, int], None]


class ClaimLoop:
    """Owns the slots of one engine, the groups hinted to have work, and the claims it made."""

    def __init__(
        self, *, groups: list[str], concurrency: int, settings: DispatcherSettings,
        admission: Admission, db: DatabaseAccess, clock: DatabaseClock, membership: Membership,
        runner: JobRunner, writer: OutcomeWriter, fallbacks: FallbackPolicy, stats: EngineStats,
        notify_others: Callable[[set[str]], None], start_call: StartCall,
        before_claims: Callable[[], Awaitable[None]],
    ):
        self.groups = groups
        self.concurrency = concurrency
        self.free = concurrency  # slots; one is freed when its job's outcome is written
        self._settings = settings
        self._admission = admission
        self._db = db
        self._clock = clock
        self._membership = membership
        self._runner = runner
        self._writer = writer
        self._fallbacks = fallbacks
        self._stats = stats
        self._notify_others = notify_others
        self._start_call = start_call
        self._before_claims = before_claims  # e.g. refresh routing numbers gone stale while idle
        self._booked = BookedCalls()
        self._hot: dict[str, None] = {}  # groups hinted to have work, in hint order
        self._wake = asyncio.Event()
        self._wake_timers: dict[str, asyncio.TimerHandle] = {}
        self._lock = asyncio.Lock()  # claims and _reconcile never overlap
        # Job id -> claim of every job this engine runs or has an unwritten outcome for: what
        # SQL says it runs beyond this came from a claim whose reply was lost (reconcile).
        self._owned: dict[int, int] = {}
        self._reconcile_due = False
        self._token_estimates: dict[str, float] = {}  # group -> tokens a call books (total)
        self._input_estimates: dict[str, float] = {}  # group -> the input part of them
        self._prices: dict = {}
        self._stopping = False

    # -- hints ---------------------------------------------------------------------------

    def hint(self, group: str) -> None:
        # Wake messages reach every worker; one started with --groups serves only those.
        if group in self.groups and not self._stopping:
            self._hot[group] = None
            self._wake.set()

    @property
    def idle(self) -> bool:
        """No job claimed and no group hinted: nothing to do until work arrives."""
        return self.free == self.concurrency and not self._hot

    @property
    def reconcile_due(self) -> bool:
        """A claim failed: SQL may say this worker runs jobs it never started."""
        return self._reconcile_due

    def hint_all(self) -> None:
        """The idle poll: a lost wake message only delays work."""
        if self.free > 0:
            for group in self.groups:
                self.hint(group)

    def hint_at(self, group: str, when: float) -> None:
        """Hint ``group`` at ``when`` (local clock); keeps only the earliest pending timer."""
        loop = asyncio.get_running_loop()
        existing = self._wake_timers.get(group)
        delay = max(0.0, when - time.time())
        if existing is not None and not existing.cancelled():
            if existing.when() <= loop.time() + delay:
                return
            existing.cancel()
        self._wake_timers[group] = loop.call_later(delay, self._timer_hint, group)

    def _timer_hint(self, group: str) -> None:
        self._wake_timers.pop(group, None)
        self.hint(group)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    # -- the loop ------------------------------------------------------------------------

    async def run(self, writer_task: asyncio.Task) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if writer_task.done():
                writer_task.result()  # surface a writer crash instead of claiming forever
            await self._fill_slots()

    async def _fill_slots(self) -> None:
        while self.free > 0 and self._hot and not self._stopping:
            for group in list(self._hot):
                if self.free <= 0 or self._stopping:
                    return
                try:
                    async with self._lock:
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
                    self.hint_at(group, time.time() + CLAIM_RETRY_S)

    async def _admit_and_claim(self, group: str) -> None:
        """Reserve capacity first, then claim that many of the group's most urgent jobs."""
        if not await self._membership.holds_lease(self._membership.lease.epoch):
            raise ServiceUnavailableError("this worker's heartbeat is not confirmed; not claiming")
        await self._before_claims()
        wanted = min(self.free, self._settings.worker.claim_batch)
        tokens, input_tokens = self._token_estimate(group)
        grants = await self._admission.acquire(group, wanted, tokens, input_tokens)
        if isinstance(grants, Blocked) and grants.urgent_room and await self._urgent_waits(group):
            # The provider has room, kept for urgent calls: one of them need not wait.
            grants = await self._admission.acquire(group, 1, tokens, input_tokens, urgent=True)
        if isinstance(grants, Blocked):
            if grants.reason in ("cooldown", "budget") and self._moves_cooled_jobs(group):
                await self._move_to_fallbacks(group, wanted)
                return
            self._hot.pop(group, None)  # no busy polling: come back when capacity frees
            self.hint_at(group, grants.until)
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

    async def _urgent_waits(self, group: str) -> bool:
        return await self._db.read(
            job_sql.urgent_ready, group=group, max_priority=URGENT_PRIORITY_MAX, now=self._clock.now()
        )

    async def _claim_for(self, group: str, grants: list[Grant]) -> None:
        """Claim one job per grant (all on one deployment) and start them."""
        deployment = grants[0].deployment
        price = self._price(deployment)
        epoch = self._membership.lease.epoch  # before the claim: a lease lost meanwhile covers these jobs
        try:
            claimed = await self._db.write(
                job_sql.claim_jobs, group=group, limit=len(grants),
                worker_id=self._membership.worker_id, now=self._clock.now(),
                postgres=self._db.postgres,
                input_price=price.input_per_token if price else 0.0,
                output_price=price.output_per_token if price else 0.0,
                deployment_id=deployment.id,
            )
        except Exception:
            self._admission.done(grants)
            await self._release_quietly(grants)
            raise
        if len(claimed) < len(grants):
            self._hot.pop(group, None)
            unused = grants[len(claimed):]
            self._admission.done(unused)
            await self._admission.release(unused)
            grants = grants[: len(claimed)]
        needs = [
            self._admission.booking(deployment, job.est_prompt_tokens, job.est_completion_tokens)
            for job in claimed
        ]
        delays = await self._admission.resize(grants, needs) if claimed else []
        for need in needs:
            self._learn_token_need(group, need)
        late_tolerance_s = self._settings.rate_limits.late_tolerance_s
        for job, grant, delay in zip(claimed, grants, delays):
            self._take(job)
            self._start_call(job, CallGrant(
                grant, priority=job.priority, delay=delay, admission=self._admission,
                booked=self._booked, stats=self._stats, late_tolerance_s=late_tolerance_s,
            ), epoch)

    def _take(self, job: ClaimedJob) -> None:
        self.free -= 1
        self._owned[job.id] = job.claim

    async def _release_quietly(self, grants: list[Grant]) -> None:
        try:
            await self._admission.release(grants)
        except Exception as exc:  # noqa: BLE001 - the booking lapses on its own
            log.debug("could not give back %d grants: %s", len(grants), exc)

    def _moves_cooled_jobs(self, group: str) -> bool:
        return self._settings.when_group_cooling == "fallback" and bool(
            self._fallbacks.candidates(group, None)
        )

    async def _move_to_fallbacks(self, group: str, wanted: int) -> None:
        """Every deployment of ``group`` is cooling down: hand its jobs to its fallbacks."""
        claimed = await self._db.write(
            job_sql.claim_jobs, group=group, limit=wanted, worker_id=self._membership.worker_id,
            now=self._clock.now(), postgres=self._db.postgres,
        )
        if len(claimed) < wanted:
            self._hot.pop(group, None)
        for job in claimed:
            self._take(job)
            self._writer.add(self._runner.group_unavailable(
                job, f"every deployment of model group '{group}' is cooling down or over budget"
            ))

    async def reconcile(self) -> None:
        """Hand back the jobs SQL says this worker runs but it does not (housekeeping)."""
        async with self._lock:
            await self._reconcile()

    async def _reconcile(self) -> None:
        """A claim whose COMMIT reply was lost committed without this loop knowing."""
        released = await self._db.write(
            hand_back_unowned, worker_id=self._membership.worker_id, owned=dict(self._owned),
            postgres=self._db.postgres,
        )
        self._reconcile_due = False
        if released:
            groups = {group for _, group in released}
            log.warning("%d jobs claimed by a transaction whose reply was lost are queued again",
                        len(released))
            for group in groups:
                self.hint(group)
            self._notify_others(groups)

    # -- outcomes on record ------------------------------------------------------------------

    def written(self, outcomes: list[Outcome], recorded: set[int]) -> None:
        """Outcomes are committed: free their slots, and hint where requeued jobs will be due."""
        loop = asyncio.get_running_loop()
        self.free += len(outcomes)
        now = self._clock.now()  # not_before is on the database's clock
        for outcome in outcomes:
            job = outcome.job
            if self._owned.get(job.id) == job.claim:
                del self._owned[job.id]
            if job.cost_capped:  # its reservation is freed: held-back jobs may fit now
                self.hint(job.model_group)
            if outcome.is_final:
                self._stats.finished += 1
            elif job.id in recorded:
                self._stats.requeued += 1
                group = outcome.next_group or job.model_group
                if group in self.groups:
                    loop.call_later(max(0.0, outcome.not_before - now), self.hint, group)
                else:  # a fallback group this worker does not serve
                    self._notify_others({group})
        self._wake.set()

    # -- estimates -------------------------------------------------------------------------

    def _price(self, deployment):
        if deployment.id not in self._prices:
            self._prices[deployment.id] = price_for(deployment)
        return self._prices[deployment.id]

    def _token_estimate(self, group: str) -> tuple[int, int]:
        """Tokens to book per call before the jobs are known, and the input part of them."""
        total = self._token_estimates.get(group, self._settings.default_max_tokens + 100)
        return int(total), int(self._input_estimates.get(group, 100))

    def _learn_token_need(self, group: str, need: TokenBooking) -> None:
        for estimates, value in ((self._token_estimates, need.total), (self._input_estimates, need.input)):
            current = estimates.get(group)
            estimates[group] = (
                value if current is None else current + TOKEN_ESTIMATE_WEIGHT * (value - current)
            )
