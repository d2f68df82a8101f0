"""Statements on batches: create, running counters, state transitions, queries."""

from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

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


def get_batch(connection: Connection, batch_id: str) -> Row | None:
    return connection.execute(sa.select(batches).where(batches.c.id == batch_id)).first()


def find_by_idempotency_key(connection: Connection, key: str) -> Row | None:
    return connection.execute(
        sa.select(batches).where(batches.c.idempotency_key == key)
    ).first()


def list_batches(
    connection: Connection, *, limit: int = 20, status: str | None = None
) -> list[Row]:
    query = sa.select(batches).order_by(batches.c.created_at.desc()).limit(limit)
    if status:
        query = query.where(batches.c.status == status)
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
    """Close batches whose every job has ended: in_progress -> completed, cancelling -> cancelled."""
    ids = list(batch_ids)
    if not ids:
        return
    ended = (
        batches.c.succeeded + batches.c.failed + batches.c.cancelled + batches.c.expired
        >= batches.c.total
    )
    connection.execute(
        batches.update()
        .where(batches.c.id.in_(ids), batches.c.status == BatchStatus.IN_PROGRESS, ended)
        .values(status=BatchStatus.COMPLETED, finalizing_at=now, completed_at=now)
    )
    connection.execute(
        batches.update()
        .where(batches.c.id.in_(ids), batches.c.status == BatchStatus.CANCELLING, ended)
        .values(status=BatchStatus.CANCELLED, cancelled_at=now)
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
    """Cancel a batch's jobs that have not started; returns how many."""
    result = connection.execute(
        jobs.update()
        .where(
            jobs.c.batch_id == batch_id,
            jobs.c.status == JobStatus.QUEUED,
        )
        .values(
            status=JobStatus.CANCELLED,
            finished_at=now,
            error_code="batch_cancelled",
            error_message="The batch was cancelled before this request started.",
        )
    )
    return result.rowcount or 0


def count_jobs_by_status(connection: Connection, batch_id: str) -> dict[str, int]:
    rows = connection.execute(
        sa.select(jobs.c.status, sa.func.count())
        .where(jobs.c.batch_id == batch_id)
        .group_by(jobs.c.status)
    ).all()
    return {status: count for status, count in rows}
