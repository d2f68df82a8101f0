"""Retention: drop the request and response bodies of batches that ended long ago.

What stays: every job row with its status, custom_id, error, tokens and cost, every call
(attempts rows and the calls job rows hold: what ``usage`` reports from, store/calls.py), and
the batch with its counters. What goes: ``jobs.body``
and ``jobs.response``, most of a job's bytes. A batch is pruned once; ``batches.pruned_at``
then says why its results cannot be written any more.

A batch still running is never pruned. Neither is one whose results were never downloaded
(``batches.results_downloaded_at``, set by ``results`` and by the API's output file download)
unless the caller asks. Bodies are dropped a range of jobs per transaction, so no lock is held
for long; PostgreSQL reuses the space after the next (auto)vacuum, it does not shrink files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dispatcher.store.database import Database
from dispatcher.store.fleet_turns import take_turn
from dispatcher.store.tables import BatchStatus, batches, jobs

CHUNK = 5000  # jobs per transaction
# When a batch ended: the time of the final status it reached.
ENDED_AT = sa.func.coalesce(
    batches.c.completed_at, batches.c.failed_at, batches.c.cancelled_at, batches.c.expired_at,
    batches.c.budget_exceeded_at,
)
COMPLETION = "completion"  # a caller waited for its one result: that was its download


@dataclass
class Pruned:
    """What a prune dropped (or, with ``dry_run``, would drop)."""

    batches: list[str] = field(default_factory=list)
    jobs: int = 0
    dry_run: bool = False
    skipped_undownloaded: int = 0  # ended before the cutoff, results never downloaded

    def as_dict(self) -> dict:
        return asdict(self)


def prunable(
    connection: Connection, *, finished_before: float, include_undownloaded: bool
) -> tuple[list[tuple[str, int]], int]:
    """([(batch id, jobs)], how many were skipped) of batches ended before ``finished_before``
    and not pruned yet; only those whose results were downloaded unless ``include_undownloaded``."""
    query = sa.select(batches.c.id, batches.c.total, batches.c.results_downloaded_at, batches.c.kind).where(
        batches.c.status.in_(BatchStatus.FINAL),
        batches.c.pruned_at.is_(None),
        ENDED_AT < finished_before,
    ).order_by(ENDED_AT)
    chosen, skipped = [], 0
    for row in connection.execute(query):
        if include_undownloaded or row.results_downloaded_at is not None or row.kind == COMPLETION:
            chosen.append((row.id, row.total))
        else:
            skipped += 1
    return chosen, skipped


def prune(
    database: Database, *, finished_before: float, now: float, include_undownloaded: bool = False,
    dry_run: bool = False, chunk: int = CHUNK,
) -> Pruned:
    """Drop the bodies of every batch ``prunable`` finds; see the module docstring."""
    with database.read() as connection:
        chosen, skipped = prunable(
            connection, finished_before=finished_before, include_undownloaded=include_undownloaded
        )
    result = Pruned(dry_run=dry_run, skipped_undownloaded=skipped)
    for batch_id, total in chosen:
        result.batches.append(batch_id)
        result.jobs += total
        if not dry_run:
            _drop_bodies(database, batch_id, total, now, chunk)
    return result


def _drop_bodies(database: Database, batch_id: str, total: int, now: float, chunk: int) -> None:
    """Bodies of one batch's jobs, ``chunk`` positions (seq) per transaction, found by
    ux_jobs_batch_seq; the batch is marked last, so an interrupted prune is taken up again."""
    for start in range(0, max(total, 1), chunk):
        with database.write() as connection:
            connection.execute(
                jobs.update()
                .where(jobs.c.batch_id == batch_id, jobs.c.seq >= start, jobs.c.seq < start + chunk)
                .values(body=None, response=None)
            )
    with database.write() as connection:
        connection.execute(batches.update().where(batches.c.id == batch_id).values(pruned_at=now))


def mark_downloaded(connection: Connection, batch_id: str, now: float) -> None:
    """Its results were exported whole: retention may drop its bodies once it is old enough."""
    connection.execute(
        batches.update().where(batches.c.id == batch_id).values(results_downloaded_at=now)
    )


TURN = "retention"


def prune_if_my_turn(database: Database, settings, now: float) -> Pruned | None:
    """A worker's retention (``retention`` settings): prune if this worker takes the turn."""
    from dispatcher.durations import parse_duration

    with database.write() as connection:
        if not take_turn(connection, TURN, now, settings.interval):
            return None
    return prune(
        database, finished_before=now - parse_duration(settings.finished_before), now=now,
        include_undownloaded=settings.include_undownloaded,
    )
