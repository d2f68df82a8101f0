"""The registry of worker processes: heartbeats, and taking over the jobs of dead ones."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from dispatcher.store.jobs import release_worker_jobs
from dispatcher.store.tables import workers


def register_worker(
    connection: Connection,
    *,
    worker_id: str,
    hostname: str,
    pid: int,
    concurrency: int,
    groups: list[str],
    now: float,
) -> None:
    values = dict(
        hostname=hostname,
        pid=pid,
        concurrency=concurrency,
        groups=",".join(groups),
        started_at=now,
        heartbeat_at=now,
        stopped_at=None,
    )
    updated = connection.execute(
        workers.update().where(workers.c.id == worker_id).values(**values)
    ).rowcount
    if not updated:
        connection.execute(workers.insert().values(id=worker_id, **values))


def heartbeat(connection: Connection, worker_id: str, now: float) -> bool:
    """Refresh the heartbeat; False when this worker had been declared dead (and reaped)."""
    return (
        connection.execute(
            workers.update()
            .where(workers.c.id == worker_id, workers.c.stopped_at.is_(None))
            .values(heartbeat_at=now)
        ).rowcount
        > 0
    )


def mark_stopped(connection: Connection, worker_id: str, now: float) -> None:
    connection.execute(
        workers.update().where(workers.c.id == worker_id).values(stopped_at=now)
    )


def dead_workers(connection: Connection, now: float, dead_after: float) -> list[str]:
    return list(
        connection.execute(
            sa.select(workers.c.id).where(
                workers.c.stopped_at.is_(None), workers.c.heartbeat_at < now - dead_after
            )
        ).scalars()
    )


def reap_worker(
    connection: Connection, worker_id: str, now: float, reason: str
) -> list[tuple[int, str, str, int]]:
    """Declare a worker dead and return its running jobs to the queue (once, even if raced)."""
    won = connection.execute(
        workers.update()
        .where(workers.c.id == worker_id, workers.c.stopped_at.is_(None))
        .values(stopped_at=now)
    ).rowcount
    if not won:
        return []
    return release_worker_jobs(connection, worker_id, now, reason)


def live_workers(connection: Connection, now: float, dead_after: float) -> list[Row]:
    return connection.execute(
        sa.select(workers).where(
            workers.c.stopped_at.is_(None), workers.c.heartbeat_at >= now - dead_after
        )
    ).all()
