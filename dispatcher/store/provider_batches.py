"""The SQL of the provider batch route: forming provider batches from held jobs, taking one
to work on, fencing each step's write, and writing the lines' results back to their jobs.

A provider batch row is worked on by one worker at a time: ``take_parts`` sets ``worker_id``
and bumps ``claim``; every later write is guarded by that claim, so a worker that was judged
dead (and whose part another worker took) cannot overwrite what the new owner stored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from dispatcher.intake.validate import CHAT_COMPLETIONS
from dispatcher.store.bodies import PackedText, pack
from dispatcher.store.jobs import RESULT_COLUMNS, result_values
from dispatcher.store.tables import (
    BatchStatus,
    JobStatus,
    PartState,
    Route,
    attempts,
    batches,
    jobs,
    provider_batches,
)

# Bytes a line takes beyond its body (custom_id, method, url, model): an upper bound, so a
# provider batch formed from body lengths stays within the provider's size limit.
LINE_OVERHEAD_BYTES = 400


def new_part_id() -> str:
    return "pb_" + os.urandom(10).hex()


# -- which batches have work, and forming provider batches -----------------------------------


def batches_to_form(connection: Connection, now: float, limit: int = 20) -> list[str]:
    """Batches routed through provider batches that still hold jobs not yet in one."""
    held = sa.exists().where(jobs.c.batch_id == batches.c.id, jobs.c.status == JobStatus.HELD)
    query = (
        sa.select(batches.c.id)
        .where(
            batches.c.via == Route.PROVIDER_BATCH,
            batches.c.status == BatchStatus.IN_PROGRESS,
            batches.c.storing_until.is_(None),
            sa.or_(batches.c.not_before.is_(None), batches.c.not_before <= now),
            held,
        )
        .order_by(batches.c.priority, batches.c.created_at)
        .limit(limit)
    )
    return list(connection.execute(query).scalars())


def held_groups(connection: Connection, batch_id: str) -> list[tuple[str, str | None]]:
    """(model group, endpoint) pairs among the batch's held jobs."""
    query = (
        sa.select(jobs.c.model_group, jobs.c.endpoint)
        .where(jobs.c.batch_id == batch_id, jobs.c.status == JobStatus.HELD)
        .distinct()
    )
    return [(row.model_group, row.endpoint) for row in connection.execute(query)]


def lock_batch(connection: Connection, batch_id: str, postgres: bool) -> Row | None:
    """The batch row, locked on PostgreSQL so one worker at a time forms its provider batches."""
    query = sa.select(batches.c.id, batches.c.status).where(batches.c.id == batch_id)
    if postgres:
        query = query.with_for_update()
    return connection.execute(query).first()


def next_part_number(connection: Connection, batch_id: str) -> int:
    current = connection.execute(
        sa.select(sa.func.max(provider_batches.c.part)).where(provider_batches.c.batch_id == batch_id)
    ).scalar()
    return 0 if current is None else current + 1


def form_part(
    connection: Connection, *, batch_id: str, group: str, endpoint: str | None, deployment_id: str,
    part: int, max_lines: int, max_bytes: int, now: float,
) -> tuple[str, int] | None:
    """Put the next held jobs of (batch, group, endpoint), in order, into a new provider batch
    of at most ``max_lines`` lines and about ``max_bytes``; returns (its id, lines) or None."""
    endpoint_is = jobs.c.endpoint.is_(None) if endpoint is None else jobs.c.endpoint == endpoint
    rows = connection.execute(
        sa.select(jobs.c.seq, jobs.c.body)  # the line's size: its body unpacked (bodies.py)
        .where(jobs.c.batch_id == batch_id, jobs.c.status == JobStatus.HELD,
               jobs.c.model_group == group, endpoint_is)
        .order_by(jobs.c.seq)
        .limit(max_lines)
    ).all()
    if not rows:
        return None
    size, last_seq, count = 0, rows[0][0], 0
    for seq, body in rows:
        line = len(body.encode()) + LINE_OVERHEAD_BYTES
        if count and size + line > max_bytes:
            break
        size += line
        last_seq, count = seq, count + 1
    part_id = new_part_id()
    connection.execute(provider_batches.insert().values(
        id=part_id, batch_id=batch_id, part=part, model_group=group, deployment_id=deployment_id,
        endpoint=endpoint or CHAT_COMPLETIONS, state=PartState.NEW, lines=count, bytes=size,
        created_at=now, next_poll_at=0.0,
    ))
    # A range of seq, not a list of ids: up to 100,000 ids would pass SQLite's variable limit.
    moved = connection.execute(
        jobs.update()
        .where(jobs.c.batch_id == batch_id, jobs.c.status == JobStatus.HELD, jobs.c.model_group == group,
               endpoint_is, jobs.c.seq >= rows[0][0], jobs.c.seq <= last_seq)
        .values(status=JobStatus.REMOTE, remote_part=part_id, claim=jobs.c.claim + 1, started_at=now)
    ).rowcount
    if moved != count:  # never expected: the batch row lock serializes forming
        connection.execute(provider_batches.update().where(provider_batches.c.id == part_id).values(lines=moved))
    return part_id, moved


# -- taking a provider batch and fencing its steps ---------------------------------------------


def due_parts(connection: Connection, now: float, limit: int, deployment_ids: Sequence[str]) -> list[str]:
    """Up to ``limit`` provider batches of these deployments that need a step now and that
    nobody works on (a read: most looks find none, and take no write lock)."""
    if limit <= 0 or not deployment_ids:
        return []
    return list(connection.execute(
        sa.select(provider_batches.c.id)
        .where(provider_batches.c.worker_id.is_(None),
               provider_batches.c.deployment_id.in_(list(deployment_ids)),
               provider_batches.c.state.not_in(PartState.DONE),
               provider_batches.c.next_poll_at <= now)
        .order_by(provider_batches.c.next_poll_at)
        .limit(limit)
    ).scalars())


def take_parts(connection: Connection, worker_id: str, part_ids: Sequence[str]) -> list[Row]:
    """Take those of ``part_ids`` still free: the conditional UPDATE lets one worker win each."""
    if not part_ids:
        return []
    return connection.execute(
        provider_batches.update()
        .where(provider_batches.c.id.in_(list(part_ids)), provider_batches.c.worker_id.is_(None))
        .values(worker_id=worker_id, claim=provider_batches.c.claim + 1)
        .returning(*provider_batches.c)
    ).all()


def _held(part_id: str, claim: int):
    return sa.and_(provider_batches.c.id == part_id, provider_batches.c.claim == claim)


def update_part(connection: Connection, part_id: str, claim: int, **values: Any) -> bool:
    """Write a step's result; False when another worker has taken the part since."""
    return connection.execute(
        provider_batches.update().where(_held(part_id, claim)).values(**values)
    ).rowcount > 0


def release_part(connection: Connection, part_id: str, claim: int, **values: Any) -> bool:
    return update_part(connection, part_id, claim, worker_id=None, **values)


def release_worker_parts(connection: Connection, worker_id: str) -> int:
    """A stopped or dead worker's provider batches are free to take (steps resume from SQL)."""
    return connection.execute(
        provider_batches.update().where(provider_batches.c.worker_id == worker_id).values(worker_id=None)
    ).rowcount or 0


def get_part(connection: Connection, part_id: str) -> Row | None:
    return connection.execute(sa.select(provider_batches).where(provider_batches.c.id == part_id)).first()


def known_remote_ids(connection: Connection, deployment_id: str) -> set[str]:
    rows = connection.execute(
        sa.select(provider_batches.c.remote_id)
        .where(provider_batches.c.deployment_id == deployment_id, provider_batches.c.remote_id.is_not(None))
    )
    return {row.remote_id for row in rows}


def parts_of_batch(connection: Connection, batch_id: str) -> list[Row]:
    return connection.execute(
        sa.select(provider_batches).where(provider_batches.c.batch_id == batch_id).order_by(provider_batches.c.part)
    ).all()


def part_jobs(connection: Connection, part_id: str, after_id: int, limit: int) -> list[Row]:
    """The jobs still in the provider batch, by id, from ``after_id`` on (keyset pages)."""
    return connection.execute(
        sa.select(jobs.c.id, jobs.c.body, jobs.c.endpoint)
        .where(jobs.c.remote_part == part_id, jobs.c.status == JobStatus.REMOTE, jobs.c.id > after_id)
        .order_by(jobs.c.id)
        .limit(limit)
    ).all()


# -- results back to their jobs ----------------------------------------------------------------


@dataclass(slots=True)
class InPart:
    """A job still waiting for its line's result, as the import needs it."""

    id: int
    claim: int
    attempts: int
    expires_at: float | None


def jobs_in_part(connection: Connection, part_id: str, job_ids: Sequence[int], postgres: bool) -> dict[int, InPart]:
    """Those of ``job_ids`` still in the provider batch (locked on PostgreSQL until commit):
    only they take a result, so importing the same lines twice changes nothing."""
    if not job_ids:
        return {}
    query = sa.select(jobs.c.id, jobs.c.claim, jobs.c.attempts, jobs.c.expires_at).where(
        jobs.c.id.in_(list(job_ids)), jobs.c.status == JobStatus.REMOTE, jobs.c.remote_part == part_id
    )
    if postgres:
        query = query.with_for_update()
    return {row.id: InPart(row.id, row.claim, row.attempts, row.expires_at) for row in connection.execute(query)}


def unanswered_jobs(connection: Connection, part_id: str, limit: int) -> list[int]:
    """Jobs still in the provider batch after its results were read: lines it never answered."""
    return list(connection.execute(
        sa.select(jobs.c.id).where(jobs.c.remote_part == part_id, jobs.c.status == JobStatus.REMOTE).limit(limit)
    ).scalars())


_FINISH_LINE = (
    jobs.update()
    .where(jobs.c.id == sa.bindparam("b_id"))
    .values(**result_values(), attempts=jobs.c.attempts + 1)
)

# Back to the realtime queue: a line the provider batch failed, while the window allows.
_REQUEUE_LINE = (
    jobs.update()
    .where(jobs.c.id == sa.bindparam("b_id"))
    .values(
        status=JobStatus.QUEUED,
        not_before=sa.bindparam("b_not_before"),
        attempts=jobs.c.attempts + sa.bindparam("b_attempted"),
        error_code=sa.bindparam("b_error_code"),
        error_message=sa.bindparam("b_error_message"),
    )
)


# PostgreSQL: a chunk's answered lines in one statement, passed as one JSON document that
# the server unpacks (json_to_recordset), guarded, returning what the attempt rows need.
# About 3x an UPDATE per line, and 2x arrays of columns (psycopg quotes each array element in
# Python). SQLite: one UPDATE per line after a read of the jobs still waiting (SQLite has one
# writer at a time).
def _typed(table: sa.Table, names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(column, PostgreSQL type) for a json_to_recordset column list, read from the table."""
    def kind(column: sa.Column) -> str:
        if isinstance(column.type, sa.Integer):
            return "int"
        if isinstance(column.type, PackedText):
            return "bytea"  # passed packed, as hex (see _packed)
        return "float8" if isinstance(column.type, sa.Float) else "text"
    return tuple((name, kind(table.c[name])) for name in names)


_FINISH_COLUMNS = _typed(jobs, ("id", *RESULT_COLUMNS))


def _record_type(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{name} {kind}" for name, kind in columns)


# Without table statistics (a table just filled), the planner takes json_to_recordset for 100
# rows and the jobs for one, and would parse the document again for every job it joins.
_NO_NESTED_LOOPS = sa.text("SET LOCAL enable_nestloop = off")
# A chunk's COMMIT need not wait for the disk: a chunk lost in a database crash leaves its jobs
# waiting, and the provider batch is marked imported (a normal COMMIT, which flushes every
# earlier one) only after all of them, so the next import writes them again.
_ASYNC_COMMIT = sa.text("SET LOCAL synchronous_commit = off")
_FINISH_LINES_POSTGRES = sa.text(
    "UPDATE jobs AS j SET "
    + ", ".join(f"{name} = v.{name}" for name, _ in _FINISH_COLUMNS[1:])
    + ", attempts = j.attempts + 1 FROM json_to_recordset(CAST(:rows AS json)) AS v("
    + _record_type(_FINISH_COLUMNS) + ") "
    # The ids again as an array, and the guard in a form no index serves (coalesce), so the
    # jobs are found by primary key, not by a scan of every job in a provider batch
    "WHERE j.id = ANY(CAST(:ids AS int[])) AND j.id = v.id "
    "AND coalesce(j.status, '') = 'remote' AND coalesce(j.remote_part, '') = :part "
    "RETURNING j.id, j.claim, j.attempts"
)


def _packed(text: str | None) -> str | None:
    """A body as json_to_recordset reads a bytea: packed (bodies.py), in hex."""
    return None if text is None else "\\x" + pack(text).hex()


def finish_waiting_lines(connection: Connection, part_id: str, rows: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """Write final results of jobs still in the provider batch (rows of others are skipped);
    returns job id -> (claim, attempts counting this one) for those written."""
    if not rows:
        return {}
    if connection.dialect.name == "postgresql":
        document = orjson.dumps([
            {name: _packed(row[f"b_{name}"]) if kind == "bytea" else row[f"b_{name}"] for name, kind in _FINISH_COLUMNS}
            for row in rows
        ])
        connection.execute(_NO_NESTED_LOOPS)
        connection.execute(_ASYNC_COMMIT)
        written = connection.execute(_FINISH_LINES_POSTGRES, {
            "rows": document.decode(), "ids": [row["b_id"] for row in rows], "part": part_id,
        })
        return {row.id: (row.claim, row.attempts) for row in written}
    waiting = jobs_in_part(connection, part_id, [row["b_id"] for row in rows], postgres=False)
    connection.execute(_FINISH_LINE, [row for row in rows if row["b_id"] in waiting])
    return {job.id: (job.claim, job.attempts + 1) for job in waiting.values()}


def finish_lines(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Final results of jobs already read (and locked) with ``jobs_in_part``."""
    if rows:
        connection.execute(_FINISH_LINE, rows)


_ATTEMPT_COLUMNS = _typed(attempts, (
    "job_id", "batch_id", "number", "claim", "model_group", "deployment_id", "worker_id", "started_at",
    "ended_at", "latency_ms", "outcome", "error_class", "status_code", "error_message", "prompt_tokens",
    "completion_tokens", "total_tokens", "cached_tokens", "cost", "request_id", "route",
))
_INSERT_ATTEMPTS_POSTGRES = sa.text(
    "INSERT INTO attempts (" + ", ".join(name for name, _ in _ATTEMPT_COLUMNS) + ") SELECT * FROM "
    "json_to_recordset(CAST(:rows AS json)) AS v(" + _record_type(_ATTEMPT_COLUMNS) + ")"
)


def insert_line_attempts(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Attempt rows of lines just written (their jobs were still in the provider batch, so no
    row of the same (job, claim) exists)."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(_INSERT_ATTEMPTS_POSTGRES, {"rows": orjson.dumps(rows).decode()})
    else:
        connection.execute(attempts.insert(), rows)


def requeue_lines(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection.execute(_REQUEUE_LINE, rows)


def cancel_unsent_parts(connection: Connection, batch_id: str, now: float) -> int:
    """On cancel: provider batches nobody has sent are dropped and their jobs cancelled; the
    others are asked to cancel at the provider (their owner, or the next taker, does it).
    Returns the jobs cancelled here."""
    unsent = (
        sa.select(provider_batches.c.id)
        .where(provider_batches.c.batch_id == batch_id, provider_batches.c.state == PartState.NEW,
               provider_batches.c.worker_id.is_(None))
    )
    dropped = list(connection.execute(unsent).scalars())
    cancelled = 0
    if dropped:
        connection.execute(
            provider_batches.update().where(provider_batches.c.id.in_(dropped))
            .values(state=PartState.DROPPED, cancel_requested=True)
        )
        cancelled = cancel_part_jobs(connection, dropped, now)
    connection.execute(
        provider_batches.update()
        .where(provider_batches.c.batch_id == batch_id, provider_batches.c.state.not_in(PartState.DONE))
        .values(cancel_requested=True, next_poll_at=0.0)
    )
    return cancelled


def cancel_part_jobs(connection: Connection, part_ids: Iterable[str], now: float) -> int:
    """Jobs of these provider batches that got no result end cancelled."""
    return connection.execute(
        jobs.update()
        .where(jobs.c.remote_part.in_(list(part_ids)), jobs.c.status == JobStatus.REMOTE)
        .values(status=JobStatus.CANCELLED, finished_at=now, error_code="batch_cancelled",
                error_message="The batch was cancelled before this request ran.")
    ).rowcount or 0
