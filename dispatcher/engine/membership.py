"""A worker's place in the fleet: registered, heartbeating, holding a lease on the jobs it
claimed, taking over the jobs of dead workers, and the fleet's housekeeping.

``take_over_dead_workers`` and ``tidy`` are plain functions on a connection, so
``Client.recover`` runs the same steps a worker's housekeeping runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from sqlalchemy.engine import Connection

from dispatcher.config.schema import WorkerSettings
from dispatcher.engine.db_access import DatabaseAccess
from dispatcher.engine.lease import Lease
from dispatcher.store import batches as batch_sql
from dispatcher.store import files as file_sql
from dispatcher.store import workers as worker_sql
from dispatcher.store.clock import DatabaseClock
from dispatcher.store.handback import Released, release_worker_jobs

log = logging.getLogger(__name__)


def take_over_dead_workers(
    connection: Connection, *, dead_after: float, now: float, reason: str,
    max_worker_deaths: int | None, skip: str | None = None,
) -> dict[str, list[Released]]:
    """Declare every worker silent for ``dead_after`` seconds (database clock) dead and queue
    its running jobs again; ``reason`` may name ``{worker_id}``. Returns the jobs per worker."""
    taken = {}
    for worker_id in worker_sql.dead_workers(connection, dead_after):
        if worker_id != skip:
            taken[worker_id] = worker_sql.reap_worker(
                connection, worker_id, now, reason.format(worker_id=worker_id),
                max_worker_deaths=max_worker_deaths,
            )
    return taken


@dataclass
class Tidied:
    expired: list[str]  # batches with jobs past their completion window
    capped: list[str]  # batches stopped at their cost cap
    abandoned: list[tuple[str, str]]  # half-stored batches ended: (batch id, status)
    files_deleted: list[str]  # uploaded files past their expiry, and dropped uploads


def tidy(connection: Connection, now: float) -> Tidied:
    """Expire jobs past their window, stop batches at their cost cap, end batches whose
    submit died while storing them (freeing their idempotency keys), and delete uploaded
    files past their expiry (and uploads whose writer stopped)."""
    return Tidied(
        expired=batch_sql.expire_due(connection, now),
        capped=batch_sql.stop_at_cost_cap(connection, None, now),
        abandoned=batch_sql.abandon_stale_storing(connection),
        files_deleted=file_sql.delete_expired_files(connection, now),
    )


class Membership:
    """This worker's registration, heartbeat and lease, and its share of housekeeping."""

    def __init__(
        self, *, worker_id: str, groups: list[str], concurrency: int, settings: WorkerSettings,
        db: DatabaseAccess, clock: DatabaseClock, on_requeued: Callable[[set[str]], None],
    ):
        self.worker_id = worker_id
        self._groups = groups
        self._concurrency = concurrency
        self._settings = settings
        self._db = db
        self._clock = clock
        self._on_requeued = on_requeued  # groups with jobs queued again: wake their workers
        self.lease = Lease(settings.dead_after)
        self._renewing: asyncio.Future | None = None
        self.others_dead = False  # a heartbeat saw another worker silent for dead_after

    @property
    def housekeeping_interval(self) -> float:
        return max(self._settings.heartbeat_interval, self._settings.dead_after / 3)

    async def register(self) -> None:
        sent = time.monotonic()
        reading = await self._db.write(
            worker_sql.register_worker, worker_id=self.worker_id, hostname=socket.gethostname(),
            pid=os.getpid(), concurrency=self._concurrency, groups=self._groups,
        )
        self._clock.learn(reading)
        self.lease.confirm(sent)

    async def renew_lease(self, look_in: Sequence[str] = ()) -> list[str] | None:
        """Heartbeat now; concurrent callers share one heartbeat. With ``look_in``, the same
        transaction finds which of those groups have jobs ready; None when this call joined
        a heartbeat already under way (which may not have looked) or the lease was lost."""
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.ensure_future(self._heartbeat(list(look_in)))
            return await asyncio.shield(self._renewing)
        await asyncio.shield(self._renewing)
        return None

    async def _heartbeat(self, look_in: list[str]) -> list[str] | None:
        sent = time.monotonic()
        beat = await self._db.write(
            worker_sql.beat, worker_id=self.worker_id, dead_after=self._settings.dead_after,
            look_in=look_in, now=self._clock.now(),
        )
        if beat.reading is not None:
            self._clock.learn(beat.reading)
            self.lease.confirm(sent)
            self.others_dead = self.others_dead or beat.others_dead
            return beat.ready
        log.warning(
            "this worker was declared dead by another one (its jobs were handed over; the calls "
            "not sent yet are dropped); registering again"
        )
        self.lease.lost()
        await self.register()
        return None

    def may_send(self, epoch: int) -> bool:
        """Without waiting: does the lease under which jobs of ``epoch`` were claimed hold?"""
        return self.lease.fresh() and self.lease.epoch == epoch

    async def holds_lease(self, epoch: int) -> bool:
        """Can this worker prove it still holds the jobs it claimed in ``epoch``? Renews a
        stale lease first (after a freeze, or when heartbeats failed)."""
        if not self.lease.fresh():
            try:
                await self.renew_lease()
            except Exception as exc:  # noqa: BLE001 - unproven: the caller does not send
                log.warning("cannot confirm this worker's heartbeat: %s", exc)
                return False
        return self.may_send(epoch)

    async def take_over_dead_workers(self) -> None:
        if not self.lease.may_reap():
            return  # this worker's own heartbeat is not steady: it cannot judge others'
        self.others_dead = False
        taken = await self._db.write(
            take_over_dead_workers, dead_after=self._settings.dead_after, now=self._clock.now(),
            reason="worker {worker_id} stopped sending heartbeats",
            max_worker_deaths=self._settings.max_worker_deaths, skip=self.worker_id,
        )
        # Every declaration is logged, with or without jobs: an operator sees each dead worker.
        for worker_id, released in taken.items():
            log.warning("worker %s is dead; %d of its jobs are queued again", worker_id, len(released))
            if released:
                self._on_requeued({group for _, _, group, _ in released})

    async def tidy(self) -> None:
        tidied = await self._db.write(tidy, now=self._clock.now())
        if tidied.expired:
            log.info("completion window passed for jobs of %d batch(es)", len(tidied.expired))
        for batch_id, status in tidied.abandoned:
            log.warning("batch %s was left half-stored by a submit that stopped; it is now %s", batch_id, status)
        if tidied.files_deleted:
            log.info("deleted %d expired uploaded files", len(tidied.files_deleted))

    async def leave(self) -> None:
        """On the way out: hand back every job still claimed, and say this worker stopped."""
        released = await self._db.write(
            release_worker_jobs, worker_id=self.worker_id, now=self._clock.now(),
            reason="worker stopped before the call finished",
        )
        if released:
            log.info("handed %d unfinished jobs back to the queue", len(released))
            self._on_requeued({group for _, _, group, _ in released})
        await self._db.write(worker_sql.mark_stopped, worker_id=self.worker_id, now=self._clock.now())
