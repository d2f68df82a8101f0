"""Attempt rows: one per provider call, written so that a retried write adds nothing.

A claim runs at most one call, so ``(job_id, claim)`` names a call (a unique index holds it).
Writing an attempt whose row exists already changes nothing: that is a retry of a write whose
COMMIT reply was lost. The one row that may be overwritten is an ``abandoned`` placeholder,
recorded when the worker was judged dead: the worker's late, real record of the same call
replaces it, so a call is never counted twice.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dispatcher.store.tables import attempts

ABANDONED = "abandoned"


def _insert(connection: Connection):
    """INSERT that skips rows whose (job_id, claim) exists: a race lost is a row already there."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(attempts).on_conflict_do_nothing(index_elements=["job_id", "claim"])


def record_attempts(connection: Connection, rows: list[dict[str, Any]]) -> set[tuple[int, int]]:
    """Write attempt rows (dicts of column values with ``job_id`` and ``claim``).

    Returns the (job id, claim) pairs recorded now; the others were on record already, so
    their usage and cost must not be counted again.
    """
    if not rows:
        return set()
    existing = {
        (row.job_id, row.claim): row.outcome
        for row in connection.execute(
            sa.select(attempts.c.job_id, attempts.c.claim, attempts.c.outcome).where(
                attempts.c.job_id.in_({row["job_id"] for row in rows}), attempts.c.claim.is_not(None)
            )
        )
    }
    new, replacing = [], []
    for row in rows:
        known = existing.get((row["job_id"], row["claim"]))
        if known is None:
            new.append(row)
        elif known == ABANDONED and row["outcome"] != ABANDONED:
            replacing.append(row)
    if new:
        connection.execute(_insert(connection), new)
    for row in replacing:
        connection.execute(
            attempts.update()
            .where(
                attempts.c.job_id == row["job_id"],
                attempts.c.claim == row["claim"],
                attempts.c.outcome == ABANDONED,
            )
            .values(**row)
        )
    return {(row["job_id"], row["claim"]) for row in new + replacing}
