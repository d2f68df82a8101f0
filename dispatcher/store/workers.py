"""The registry of worker processes: heartbeats, and taking over the jobs of dead ones.

Heartbeats are written and judged on the database's clock (``database_now``), never on a
worker's own: a worker whose clock is off is neither declared dead nor declares others dead.
Each heartbeat also tells the worker that clock (a ``ClockReading``), so the times it writes
to jobs are on it too (see clock.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from dispatcher.store.clock import ClockReading
from dispatcher.store.database import database_now
from dispatcher.store.handback import Released, release_worker_jobs
from dispatcher.store.jobs import ready_in
from dispatcher.store.tables import workers


def register_worker(
    connection: Connection,
    *,
    worker_id: str,
    hostname: str,
    pid: int,
    concurrency: int,
    groups: list[str],
) -> ClockReading:
    """Add (or revive) a worker; returns the database's clock as read by the write."""
    values = dict(
        hostname=hostname,
        pid=pid,
        concurrency=concurrency,
        groups=",".join(groups),
        started_at=database_now(connection),
        heartbeat_at=database_now(connection),
        stopped_at=None,
    )
    reading = _timed(connection, workers.update().where(workers.c.id == worker_id).values(**values))
    return reading or _timed(connection, workers.insert().values(id=worker_id, **values))


@dataclass
class Beat:
    reading: ClockReading | None  # None: this worker had been declared dead (and reaped)
    others_dead: bool  # another worker is silent for dead_after: time to take over
    ready: list[str]  # the groups looked in that have jobs ready to claim


def beat(
    connection: Connection, worker_id: str, *, dead_after: float, look_in: Sequence[str] = (), now: float = 0.0
) -> Beat:
    """The heartbeat, whether another worker is dead, and which of ``look_in`` have jobs ready
    (at ``now``, the database's clock): one statement, so the looks a worker makes every
    heartbeat cost no round trip of their own (an idle worker's poll rides on it)."""
    others_dead = sa.exists().where(
        workers.c.stopped_at.is_(None),
        workers.c.heartbeat_at < database_now(connection) - dead_after,
        workers.c.id != worker_id,
    )
    ready = [ready_in(group, now) for group in look_in]
    before = time.time()
    row = connection.execute(
        workers.update()
        .where(workers.c.id == worker_id, workers.c.stopped_at.is_(None))
        .values(heartbeat_at=database_now(connection))
        .returning(workers.c.heartbeat_at, others_dead, *ready)
    ).first()
    if row is None:
        return Beat(None, False, [])
    reading = ClockReading(float(row[0]), before, time.time())
    return Beat(reading, bool(row[1]), [group for group, found in zip(look_in, row[2:]) if found])


def _timed(connection: Connection, statement) -> ClockReading | None:
    """Run a write of ``heartbeat_at``; the database time it wrote, between two local readings
    (None when it wrote no row)."""
    before = time.time()
    written = connection.execute(statement.returning(workers.c.heartbeat_at)).scalar_one_or_none()
    return None if written is None else ClockReading(float(written), before, time.time())


def mark_stopped(connection: Connection, worker_id: str, now: float) -> None:
    connection.execute(
        workers.update().where(workers.c.id == worker_id).values(stopped_at=now)
    )


def dead_workers(connection: Connection, dead_after: float) -> list[str]:
    """Workers whose last heartbeat is more than ``dead_after`` seconds old (database clock)."""
    return list(
        connection.execute(
            sa.select(workers.c.id).where(
                workers.c.stopped_at.is_(None),
                workers.c.heartbeat_at < database_now(connection) - dead_after,
            )
        ).scalars()
    )


def reap_worker(
    connection: Connection, worker_id: str, now: float, reason: str,
    *, max_worker_deaths: int | None = None,
) -> list[Released]:
    """Declare a worker dead and return its running jobs to the queue (once, even if raced).

    A job that has now been running in ``max_worker_deaths`` dead workers fails instead.
    """
    won = connection.execute(
        workers.update()
        .where(workers.c.id == worker_id, workers.c.stopped_at.is_(None))
        .values(stopped_at=now)
    ).rowcount
    if not won:
        return []
    return release_worker_jobs(
        connection, worker_id, now, reason, died=True, max_worker_deaths=max_worker_deaths
    )


def live_workers(connection: Connection, dead_after: float) -> list[Row]:
    return connection.execute(
        sa.select(workers).where(
            workers.c.stopped_at.is_(None),
            workers.c.heartbeat_at >= database_now(connection) - dead_after,
        )
    ).all()
