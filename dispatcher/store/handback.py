"""Handing running jobs back to the queue.

Three cases: a worker died or stopped with jobs running (their calls are recorded as
``abandoned`` attempts); a job whose runs killed several workers (a poison job: it fails
instead of killing the next one); and claims a live worker never learned it won (the COMMIT
reply of its claim was lost), which it hands back itself.

Every hand-back bumps ``claim``, so a late result of the previous holder is fenced out, and a
job that is not ``running`` under the claim a worker holds was written by that worker. A job
handed back is due at once on the database's clock, whoever's clock hands it back.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dispatcher.store.attempts import ABANDONED, record_attempts
from dispatcher.store.database import database_now
from dispatcher.store.provider_batches import release_worker_parts
from dispatcher.store.tables import JobStatus, jobs, workers

Released = tuple[int, str, str, int]  # job id, batch id, model group, attempt number

_RETURNED = (
    jobs.c.id, jobs.c.batch_id, jobs.c.model_group, jobs.c.attempts, jobs.c.claim,
    jobs.c.started_at, jobs.c.deployment_id, jobs.c.worker_deaths,
)


def release_worker_jobs(
    connection: Connection,
    worker_id: str,
    now: float,
    reason: str,
    *,
    died: bool = False,
    max_worker_deaths: int | None = None,
) -> list[Released]:
    """Return a worker's running jobs to the queue, recording each interrupted call.

    ``died``: the worker crashed, was killed or stopped heartbeating (rather than stopping with
    calls unfinished); each job counts it, and one that reached ``max_worker_deaths`` ends
    ``failed`` (``worker_died``) instead of killing the next worker. Returns the requeued jobs.
    """
    # Its provider batches: free for the next worker, which resumes each step from SQL.
    release_worker_parts(connection, worker_id)
    running = sa.and_(jobs.c.worker_id == worker_id, jobs.c.status == JobStatus.RUNNING)
    deaths = jobs.c.worker_deaths + (1 if died else 0)
    common = dict(
        worker_id=None, attempts=jobs.c.attempts + 1, claim=jobs.c.claim + 1,
        worker_deaths=deaths, reserved_cost=None,
    )
    failed = []
    if died and max_worker_deaths:
        failed = connection.execute(
            jobs.update()
            .where(running, deaths >= max_worker_deaths)
            .values(
                status=JobStatus.FAILED, finished_at=now, error_code="worker_died",
                error_message=(
                    f"the worker running this request died {max_worker_deaths} times (crashed, ran "
                    "out of memory or was killed); it is not tried again "
                    "(dispatcher_settings.worker.max_worker_deaths)"
                ),
                **common,
            )
            .returning(*_RETURNED)
        ).all()
        _count_failed(connection, failed, now)
    released = connection.execute(
        jobs.update().where(running)
        .values(status=JobStatus.QUEUED, not_before=database_now(connection), **common)
        .returning(*_RETURNED)
    ).all()
    record_attempts(connection, [_abandoned_row(row, worker_id, now, reason) for row in failed + released])
    return [(row.id, row.batch_id, row.model_group, row.attempts) for row in released]


def _abandoned_row(row, worker_id: str, now: float, reason: str) -> dict:
    return {
        "job_id": row.id, "batch_id": row.batch_id, "number": row.attempts,
        "claim": row.claim - 1,  # the claim the call ran under (the hand-back bumped it)
        "model_group": row.model_group, "deployment_id": row.deployment_id,
        "worker_id": worker_id, "started_at": row.started_at or now, "ended_at": now,
        "outcome": ABANDONED, "error_message": reason,
    }


def _count_failed(connection: Connection, failed: list, now: float) -> None:
    from dispatcher.store import batches as batch_sql

    if not failed:
        return
    per_batch: dict[str, dict[str, float]] = {}
    for row in failed:
        per_batch.setdefault(row.batch_id, {"failed": 0})["failed"] += 1
    batch_sql.add_counters(connection, per_batch)
    batch_sql.finish_if_done(connection, per_batch, now)


def release_orphaned_jobs(
    connection: Connection, now: float, dead_after: float, max_worker_deaths: int | None = None
) -> int:
    """Requeue running jobs whose worker is unknown, stopped, or silent for ``dead_after``
    seconds on the database's clock."""
    live = sa.select(workers.c.id).where(
        workers.c.stopped_at.is_(None),
        workers.c.heartbeat_at >= database_now(connection) - dead_after,
    )
    orphans = connection.execute(
        sa.select(jobs.c.worker_id).distinct().where(
            jobs.c.status == JobStatus.RUNNING,
            sa.or_(jobs.c.worker_id.is_(None), jobs.c.worker_id.not_in(live)),
        )
    ).scalars().all()
    released = 0
    for worker_id in orphans:
        if worker_id is None:
            released += connection.execute(
                jobs.update()
                .where(jobs.c.status == JobStatus.RUNNING, jobs.c.worker_id.is_(None))
                .values(status=JobStatus.QUEUED, not_before=database_now(connection),
                        claim=jobs.c.claim + 1)
            ).rowcount
        else:
            released += len(release_worker_jobs(
                connection, worker_id, now, "worker no longer alive",
                died=True, max_worker_deaths=max_worker_deaths,
            ))
    return released


def hand_back_unowned(
    connection: Connection, worker_id: str, owned: dict[int, int], *, postgres: bool
) -> list[tuple[int, str]]:
    """Requeue jobs SQL says ``worker_id`` runs that it does not (``owned``: job id -> claim).

    They come from a claim whose COMMIT reply was lost: the server committed, the worker saw
    an error and never started them. No call was made, so no attempt is recorded. Returns
    (job id, model group) of the jobs handed back.
    """
    query = sa.select(jobs.c.id, jobs.c.claim).where(
        jobs.c.worker_id == worker_id, jobs.c.status == JobStatus.RUNNING
    )
    if postgres:
        query = query.with_for_update()
    strays = [row.id for row in connection.execute(query) if owned.get(row.id) != row.claim]
    if not strays:
        return []
    return [
        (row.id, row.model_group)
        for row in connection.execute(
            jobs.update()
            .where(jobs.c.id.in_(strays), jobs.c.worker_id == worker_id,
                   jobs.c.status == JobStatus.RUNNING)
            .values(status=JobStatus.QUEUED, worker_id=None, claim=jobs.c.claim + 1,
                    not_before=database_now(connection), reserved_cost=None)
            .returning(jobs.c.id, jobs.c.model_group)
        )
    ]
