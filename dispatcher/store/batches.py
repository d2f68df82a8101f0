"""Statements on batches: create, running counters, state transitions, queries."""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from dispatcher.scheduling.fair import rebase_shift
from dispatcher.store.database import database_now
from dispatcher.store.provider_batches import cancel_unsent_parts
from dispatcher.store.tables import BatchStatus, JobStatus, batches, jobs

_COUNTERS = (
    "succeeded",
    "failed",
    "cancelled",
    "expired",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cost",
    "cost_unknown",
)

_ADD_COUNTERS = (
    batches.update()
    .where(batches.c.id == sa.bindparam("b_id"))
    .values({name: batches.c[name] + sa.bindparam(f"b_{name}") for name in _COUNTERS})
)


def insert_batch(connection: Connection, values: dict[str, Any]) -> None:
    connection.execute(batches.insert().values(**values))


def _being_stored(batch_id: str) -> tuple:
    """The batch is still being stored by a live submit (not cancelled, not given up)."""
    return (
        batches.c.id == batch_id,
        batches.c.status == BatchStatus.VALIDATING,
        batches.c.storing_until.is_not(None),
    )


def renew_storing_lease(connection: Connection, batch_id: str, lease_s: float) -> bool:
    """Extend the lease of a batch whose jobs this process is storing.

    False when the batch is no longer being stored (cancelled, or given up because the lease
    had gone stale): the caller must roll back what it wrote in this transaction and stop.
    """
    result = connection.execute(
        batches.update()
        .where(*_being_stored(batch_id))
        .values(storing_until=database_now(connection) + lease_s)
    )
    return result.rowcount > 0


def finish_storing(connection: Connection, batch_id: str, now: float) -> bool:
    """Every job is stored: the batch may run. False if it was cancelled or given up meanwhile."""
    result = connection.execute(
        batches.update()
        .where(*_being_stored(batch_id))
        .values(status=BatchStatus.IN_PROGRESS, in_progress_at=now, storing_until=None)
    )
    return result.rowcount > 0


def abandon_storing(
    connection: Connection, batch_id: str, reason: str, *, only_if_stale: bool = False
) -> str | None:
    """End a batch whose jobs were not all stored; returns its final status, or None if it
    was not being stored (or, with ``only_if_stale``, its lease is still alive).

    None of its jobs ran (claims skip batches being stored), so they are deleted; the batch
    ends ``cancelled`` if someone cancelled it meanwhile, else ``failed`` with ``reason``, and
    its idempotency key is freed so that submitting again makes a new batch.
    """
    now = time.time()
    cancelled = batches.c.status == BatchStatus.CANCELLING
    statement = batches.update().where(batches.c.id == batch_id, batches.c.storing_until.is_not(None))
    if only_if_stale:
        statement = statement.where(batches.c.storing_until < database_now(connection))
    row = connection.execute(
        statement.values(
            status=sa.case((cancelled, BatchStatus.CANCELLED), else_=BatchStatus.FAILED),
            failed_at=sa.case((cancelled, None), else_=now),
            cancelled_at=sa.case((cancelled, now), else_=None),
            storing_until=None,
            idempotency_key=None,
        )
        .returning(batches.c.status, batches.c.total)
    ).first()
    if row is None:
        return None
    stored = connection.execute(jobs.delete().where(jobs.c.batch_id == batch_id)).rowcount
    connection.execute(
        batches.update()
        .where(batches.c.id == batch_id)
        .values(
            error_message=f"{reason} ({stored} of {row.total} requests had been stored; none ran "
            "and they were removed). Submit the input again.",
            total=0, succeeded=0, failed=0, cancelled=0, expired=0,
        )
    )
    return row.status


def abandon_stale_storing(connection: Connection) -> list[tuple[str, str]]:
    """Clean up batches whose submit died while storing them (lease stale on the database
    clock); returns (batch id, final status) of each."""
    stale = connection.execute(
        sa.select(batches.c.id).where(
            batches.c.status.in_([BatchStatus.VALIDATING, BatchStatus.CANCELLING]),  # indexed
            batches.c.storing_until < database_now(connection),
        )
    ).scalars().all()
    ended = []
    for batch_id in stale:
        status = abandon_storing(
            connection, batch_id, "the submit storing this batch stopped before it finished",
            only_if_stale=True,
        )
        if status is not None:
            ended.append((batch_id, status))
    return ended


def get_batch(connection: Connection, batch_id: str) -> Row | None:
    return connection.execute(sa.select(batches).where(batches.c.id == batch_id)).first()


def find_by_idempotency_key(connection: Connection, key: str) -> Row | None:
    return connection.execute(
        sa.select(batches).where(batches.c.idempotency_key == key)
    ).first()


def list_batches(
    connection: Connection, *, limit: int = 20, status: str | None = None, owner: str | None = None,
    after: Row | None = None, kind: str | None = None,
) -> list[Row]:
    """Newest first; ``owner``: only that API key's (None: everyone's); ``after``: the batch
    row the previous page ended with (keyset pagination, stable while batches are added);
    ``kind``: only batches or only completions (None: both)."""
    query = (
        sa.select(batches)
        .order_by(batches.c.created_at.desc(), batches.c.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(batches.c.status == status)
    if owner is not None:
        query = query.where(batches.c.owner == owner)
    if kind is not None:
        query = query.where(batches.c.kind == kind)
    if after is not None:
        position = sa.tuple_(batches.c.created_at, batches.c.id)
        query = query.where(position < sa.tuple_(sa.literal(after.created_at), sa.literal(after.id)))
    return connection.execute(query).all()


def add_counters(connection: Connection, deltas: dict[str, dict[str, float]]) -> None:
    """Add per-batch deltas of the running counters (one executemany for all batches)."""
    rows = []
    for batch_id, delta in deltas.items():
        row = {f"b_{name}": delta.get(name, 0) for name in _COUNTERS}
        row["b_id"] = batch_id
        rows.append(row)
    if rows:
        connection.execute(_ADD_COUNTERS, rows)


def set_status(
    connection: Connection,
    batch_id: str,
    status: str,
    *,
    when: float,
    from_statuses: Iterable[str] | None = None,
    **extra: Any,
) -> bool:
    """Move a batch to ``status`` (stamping ``<status>_at``); False if it was not in ``from``."""
    values: dict[str, Any] = {"status": status, **extra}
    stamp = f"{status}_at"
    if stamp in batches.c:
        values[stamp] = when
    statement = batches.update().where(batches.c.id == batch_id).values(**values)
    if from_statuses is not None:
        statement = statement.where(batches.c.status.in_(list(from_statuses)))
    return connection.execute(statement).rowcount > 0


def finish_if_done(connection: Connection, batch_ids: Iterable[str], now: float) -> None:
    """Close batches whose every job has ended, in one statement.

    in_progress -> budget_exceeded (its max_cost stopped it), else expired (some jobs missed
    the completion window), else completed; cancelling -> cancelled. (SET expressions read
    the row as it was, so each CASE sees the old status.)
    """
    ids = list(batch_ids)
    if not ids:
        return
    ended = (
        batches.c.succeeded + batches.c.failed + batches.c.cancelled + batches.c.expired
        >= batches.c.total
    )
    running = batches.c.status == BatchStatus.IN_PROGRESS
    stopped = batches.c.budget_exceeded_at.is_not(None)
    expired = sa.and_(running, ~stopped, batches.c.expired > 0)
    completed = sa.and_(running, sa.or_(stopped, batches.c.expired == 0))
    cancelled = batches.c.status == BatchStatus.CANCELLING
    connection.execute(
        batches.update()
        .where(batches.c.id.in_(ids), batches.c.status.in_([BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING]), ended)
        .values(
            status=sa.case(
                (cancelled, BatchStatus.CANCELLED),
                (stopped, BatchStatus.BUDGET_EXCEEDED),
                (batches.c.expired > 0, BatchStatus.EXPIRED),
                else_=BatchStatus.COMPLETED,
            ),
            finalizing_at=sa.case((running, now), else_=batches.c.finalizing_at),
            completed_at=sa.case((completed, now), else_=batches.c.completed_at),
            expired_at=sa.case((expired, now), else_=batches.c.expired_at),
            cancelled_at=sa.case((cancelled, now), else_=batches.c.cancelled_at),
        )
    )


def mark_in_progress_started(connection: Connection, batch_ids: Iterable[str], now: float) -> None:
    """Record when a batch's first job was claimed (``in_progress_at`` stays the first time)."""
    ids = list(batch_ids)
    if ids:
        connection.execute(
            batches.update()
            .where(batches.c.id.in_(ids), batches.c.in_progress_at.is_(None))
            .values(in_progress_at=now)
        )


def cancel_queued_jobs(connection: Connection, batch_id: str, now: float) -> int:
    """Cancel a batch's jobs that have not started; returns how many. Provider batches not
    sent yet are dropped; the others are cancelled at the provider by the worker that polls
    them, keeping the lines that finished."""
    dropped = cancel_unsent_parts(connection, batch_id, now)
    result = connection.execute(
        jobs.update()
        .where(
            jobs.c.batch_id == batch_id,
            jobs.c.status.in_([JobStatus.QUEUED, JobStatus.HELD]),
        )
        .values(
            status=JobStatus.CANCELLED,
            finished_at=now,
            error_code="batch_cancelled",
            error_message="The batch was cancelled before this request started.",
        )
    )
    return (result.rowcount or 0) + dropped


def count_jobs_by_status(connection: Connection, batch_id: str) -> dict[str, int]:
    rows = connection.execute(
        sa.select(jobs.c.status, sa.func.count())
        .where(jobs.c.batch_id == batch_id)
        .group_by(jobs.c.status)
    ).all()
    return {status: count for status, count in rows}


def expire_due(connection: Connection, now: float) -> list[str]:
    """Expire queued jobs past their window and close batches that ended; returns batch ids."""
    from dispatcher.store.jobs import expire_due_jobs

    counts = expire_due_jobs(connection, now)
    if counts:
        add_counters(connection, {batch_id: {"expired": n} for batch_id, n in counts.items()})
        finish_if_done(connection, list(counts), now)
    return list(counts)


def cancel_requeued_jobs_of_cancelled_batches(connection: Connection, job_ids: list[int], now: float) -> None:
    """Jobs put back in the queue (retry, fallback) after their batch was cancelled stay cancelled."""
    if not job_ids:
        return
    stopped = sa.select(batches.c.id).where(
        batches.c.status.in_([BatchStatus.CANCELLING, BatchStatus.CANCELLED])
    )
    rows = connection.execute(
        jobs.update()
        .where(jobs.c.id.in_(job_ids), jobs.c.status == JobStatus.QUEUED, jobs.c.batch_id.in_(stopped))
        .values(
            status=JobStatus.CANCELLED,
            finished_at=now,
            error_code="batch_cancelled",
            error_message="The batch was cancelled before this request finished.",
        )
        .returning(jobs.c.batch_id)
    ).scalars().all()
    counts: dict[str, int] = {}
    for batch_id in rows:
        counts[batch_id] = counts.get(batch_id, 0) + 1
    if counts:
        add_counters(connection, {b: {"cancelled": n} for b, n in counts.items()})
        finish_if_done(connection, list(counts), now)


def requeue_failed_jobs(
    connection: Connection, batch_id: str, now: float, expires_at: float, keep_codes: Iterable[str]
) -> list[str]:
    """Put a batch's failed jobs back in the queue (in their first model group); returns groups.

    Jobs whose error code is in ``keep_codes`` (invalid input lines) stay failed.
    """
    failed = connection.execute(
        sa.select(jobs.c.id, jobs.c.model_group, jobs.c.groups_tried).where(
            jobs.c.batch_id == batch_id,
            jobs.c.status == JobStatus.FAILED,
            sa.or_(jobs.c.error_code.is_(None), jobs.c.error_code.not_in(list(keep_codes))),
        )
    ).all()
    groups: dict[str, list[int]] = {}
    for row in failed:
        first_group = json.loads(row.groups_tried)[0] if row.groups_tried else row.model_group
        groups.setdefault(first_group, []).append(row.id)
    for group, ids in groups.items():
        for start in range(0, len(ids), 1000):
            connection.execute(
                jobs.update()
                .where(jobs.c.id.in_(ids[start:start + 1000]), jobs.c.status == JobStatus.FAILED)
                .values(
                    # Due at once on the database's clock, whatever the client's clock says.
                    status=JobStatus.QUEUED, model_group=group, retries=0,
                    not_before=database_now(connection),
                    expires_at=expires_at, groups_tried=None, finished_at=None,
                    error_code=None, error_message=None, response=None, response_status=None,
                )
            )
    if failed:
        add_counters(connection, {batch_id: {"failed": -len(failed)}})
        connection.execute(
            batches.update()
            .where(batches.c.id == batch_id)
            .values(
                status=BatchStatus.IN_PROGRESS, completed_at=None, finalizing_at=None,
                expired_at=None, failed_at=None, expires_at=expires_at,
            )
        )
    return sorted(groups)


def reprioritize(connection: Connection, batch_id: str, priority: int, now: float) -> tuple[int, list[str]]:
    """Move a batch's waiting jobs to another priority, keeping their order and joining the
    new level's round-robin where it stands now (``rebase_shift``). Returns (jobs moved,
    groups touched)."""
    from dispatcher.store.jobs import fair_frontier

    levels = connection.execute(
        sa.select(jobs.c.model_group, jobs.c.priority, sa.func.min(jobs.c.fair_key))
        .where(jobs.c.batch_id == batch_id, jobs.c.status == JobStatus.QUEUED)
        .group_by(jobs.c.model_group, jobs.c.priority)
    ).all()
    moved = 0
    for group, old_priority, first_key in levels:
        if old_priority == priority:
            continue
        frontier = fair_frontier(connection, group, priority, now, exclude_batch=batch_id)
        shift = rebase_shift(first_key, frontier)
        moved += connection.execute(
            jobs.update()
            .where(
                jobs.c.batch_id == batch_id, jobs.c.status == JobStatus.QUEUED,
                jobs.c.model_group == group, jobs.c.priority == old_priority,
            )
            .values(priority=priority, fair_key=jobs.c.fair_key + shift)
        ).rowcount
    connection.execute(batches.update().where(batches.c.id == batch_id).values(priority=priority))
    return moved, sorted({group for group, _, _ in levels})


def stop_at_cost_cap(connection: Connection, batch_ids: Iterable[str] | None, now: float) -> list[str]:
    """Batches whose spending reached their cost cap (max_cost): cancel their unstarted jobs
    (status ``budget_exceeded``, the wire name).

    Calls already running finish; the batch ends ``budget_exceeded`` once they have.
    """
    query = sa.select(batches.c.id).where(
        batches.c.max_cost.is_not(None),
        batches.c.budget_exceeded_at.is_(None),
        batches.c.status == BatchStatus.IN_PROGRESS,
        batches.c.cost >= batches.c.max_cost,
    )
    if batch_ids is not None:
        ids = list(batch_ids)
        if not ids:
            return []
        query = query.where(batches.c.id.in_(ids))
    stopped = list(connection.execute(query).scalars())
    for batch_id in stopped:
        connection.execute(
            batches.update().where(batches.c.id == batch_id).values(budget_exceeded_at=now)
        )
        cancelled = connection.execute(
            jobs.update()
            .where(jobs.c.batch_id == batch_id, jobs.c.status == JobStatus.QUEUED)
            .values(
                status=JobStatus.CANCELLED,
                finished_at=now,
                error_code="budget_exceeded",
                error_message="The batch reached its max_cost before this request started.",
            )
        ).rowcount
        add_counters(connection, {batch_id: {"cancelled": cancelled}})
    finish_if_done(connection, stopped, now)
    return stopped
