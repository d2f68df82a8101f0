"""The hot-path statements on jobs: insert, claim, record outcomes (hand-backs: handback.py).

Every statement works on many jobs at once (one round trip per chunk), because per-job SQL
would cost more CPU than the provider call itself. A result is written only if the job is
still ``running`` under the same ``claim`` number the worker got: that fence turns
at-least-once delivery into exactly one recorded result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dispatcher.scheduling import fair
from dispatcher.scheduling.order import CLAIM_ORDER, start_order
from dispatcher.store.finish_many import finish_jobs_postgres
from dispatcher.store.tables import JobStatus, jobs

INSERT_CHUNK = 2000


@dataclass(slots=True)
class ClaimedJob:
    """A job this worker won the right to run (``claim`` fences its result)."""

    id: int
    batch_id: str
    custom_id: str
    model_group: str
    priority: int
    body: str
    claim: int
    attempts: int
    retries: int
    est_prompt_tokens: int
    est_completion_tokens: int
    groups_tried: str | None
    created_at: float
    cache_mode: int = 0
    awaited: bool = False  # a caller waits for it (a chat completion): write and announce at once
    endpoint: str | None = None  # the API path it calls (/v1/embeddings); None: chat completions
    # Its batch has a cost cap (max_cost): when it ends, the batch's spend and reservations
    # change, so jobs of the batch held back by the cap may fit now. Set by the claim, not a
    # column (keyword-only, so claim columns added later still map by position).
    cost_capped: bool = field(default=False, kw_only=True)


_CLAIM_COLUMNS = (
    jobs.c.id,
    jobs.c.batch_id,
    jobs.c.custom_id,
    jobs.c.model_group,
    jobs.c.priority,
    jobs.c.body,
    jobs.c.claim,
    jobs.c.attempts,
    jobs.c.retries,
    jobs.c.est_prompt_tokens,
    jobs.c.est_completion_tokens,
    jobs.c.groups_tried,
    jobs.c.created_at,
    jobs.c.cache_mode,
    jobs.c.awaited,
    jobs.c.endpoint,
)


def insert_jobs(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert job rows (dicts of column values) in chunks."""
    for start in range(0, len(rows), INSERT_CHUNK):
        connection.execute(jobs.insert(), list(rows[start : start + INSERT_CHUNK]))


def _batches_at_cost_cap():
    """Batches whose spent cost plus the estimated cost of their running calls reached max_cost."""
    from dispatcher.store.tables import BatchStatus, batches

    running = jobs.alias("running")
    reserved = (
        sa.select(sa.func.coalesce(sa.func.sum(running.c.reserved_cost), 0.0))
        .where(running.c.batch_id == batches.c.id, running.c.status == JobStatus.RUNNING)
        .scalar_subquery()
    )
    return sa.select(batches.c.id).where(
        batches.c.max_cost.is_not(None),
        batches.c.status == BatchStatus.IN_PROGRESS,
        batches.c.cost + reserved >= batches.c.max_cost,
    )


def _unstartable_batches():
    """Batches whose queued jobs must not start: still being stored by submit (a batch runs
    only once it is stored whole), or being cancelled. Few rows, found by the status index."""
    from dispatcher.store.tables import BatchStatus, batches

    return sa.select(batches.c.id).where(
        batches.c.status.in_([BatchStatus.VALIDATING, BatchStatus.CANCELLING])
    )


def _claim_statement(postgres: bool):
    """The claim as one statement with bind parameters, built once per dialect.

    Order: ``CLAIM_ORDER`` (dispatcher/scheduling/order.py). On PostgreSQL
    ``FOR UPDATE SKIP LOCKED`` lets many workers claim at once without waiting on each other,
    and a materialized CTE runs the LIMIT subquery exactly once (with ``id IN (subquery)`` the
    planner may pick a nested-loop semi join that re-runs it per row and claims far more than
    the limit: seen in tests). SQLite serialises writers, so a plain subquery is atomic there.
    """
    now = sa.bindparam("now", type_=sa.Float)
    ready = (
        sa.select(jobs.c.id)
        .where(
            jobs.c.status == JobStatus.QUEUED,
            jobs.c.model_group == sa.bindparam("group"),
            jobs.c.not_before <= now,
            sa.or_(jobs.c.expires_at.is_(None), jobs.c.expires_at > now),
            jobs.c.batch_id.not_in(_batches_at_cost_cap()),
            jobs.c.batch_id.not_in(_unstartable_batches()),
        )
        .order_by(*[jobs.c[name] for name in CLAIM_ORDER])
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )
    values = dict(
        status=JobStatus.RUNNING,
        claim=jobs.c.claim + 1,
        worker_id=sa.bindparam("worker_id"),
        # The granted deployment: names the call in the abandoned attempt if this worker dies.
        deployment_id=sa.bindparam("deployment_id"),
        started_at=now,
        # What the call will probably cost on the granted deployment, for batches' cost caps.
        reserved_cost=jobs.c.est_prompt_tokens * sa.bindparam("input_price", type_=sa.Float)
        + jobs.c.est_completion_tokens * sa.bindparam("output_price", type_=sa.Float),
    )
    if postgres:
        picked = ready.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        statement = jobs.update().where(jobs.c.id == picked.c.id)
    else:
        statement = jobs.update().where(
            jobs.c.id.in_(ready.scalar_subquery()), jobs.c.status == JobStatus.QUEUED
        )
    return statement.values(**values).returning(*_CLAIM_COLUMNS)


_CLAIM = {True: _claim_statement(True), False: _claim_statement(False)}


def claim_jobs(
    connection: Connection,
    *,
    group: str,
    limit: int,
    worker_id: str,
    now: float,
    postgres: bool,
    input_price: float = 0.0,
    output_price: float = 0.0,
    deployment_id: str | None = None,
) -> list[ClaimedJob]:
    """Claim up to ``limit`` ready jobs of ``group``, most urgent first (see _claim_statement)."""
    rows = connection.execute(
        _CLAIM[postgres],
        dict(group=group, limit=limit, worker_id=worker_id, now=now,
             input_price=input_price, output_price=output_price, deployment_id=deployment_id),
    )
    claimed = [ClaimedJob(*row) for row in rows]
    claimed.sort(key=start_order)
    if claimed:
        claimed = _within_cost_caps(connection, claimed)
    return claimed


# Batches known to have no max_cost (so claims need not look them up again), oldest first
# (a dict used as an insertion-ordered set).
_UNCAPPED: dict[str, None] = {}
_UNCAPPED_MAX = 10_000


def _within_cost_caps(connection: Connection, claimed: list[ClaimedJob]) -> list[ClaimedJob]:
    """Hand back the claimed jobs a batch's max_cost has no room for.

    The claim skips batches already at their cost cap; this keeps one claim of many jobs from
    passing it: a job starts only while spent + the estimates of the calls before it < max_cost.
    """
    from dispatcher.store.tables import batches

    batch_ids = {job.batch_id for job in claimed}
    maybe_capped = [b for b in batch_ids if b not in _UNCAPPED]
    if not maybe_capped:
        return claimed
    caps = {
        row.id: (row.max_cost, row.cost)
        for row in connection.execute(
            sa.select(batches.c.id, batches.c.max_cost, batches.c.cost).where(
                batches.c.id.in_(maybe_capped)
            )
        )
        if row.max_cost is not None
    }
    for batch_id in maybe_capped:  # a batch's max_cost is set at submit and never changes
        if batch_id not in caps:
            if len(_UNCAPPED) >= _UNCAPPED_MAX:
                _UNCAPPED.pop(next(iter(_UNCAPPED)))
            _UNCAPPED[batch_id] = None
    if not caps:
        return claimed
    mine = {job.id for job in claimed}
    reserved: dict[str, float] = {batch_id: 0.0 for batch_id in caps}
    estimates: dict[int, float] = {}
    running = sa.select(jobs.c.id, jobs.c.batch_id, jobs.c.reserved_cost).where(
        jobs.c.batch_id.in_(list(caps)), jobs.c.status == JobStatus.RUNNING
    )
    for row in connection.execute(running):
        if row.id in mine:
            estimates[row.id] = row.reserved_cost or 0.0
        else:
            reserved[row.batch_id] += row.reserved_cost or 0.0
    kept, handed_back = [], []
    for job in claimed:
        cap = caps.get(job.batch_id)
        if cap is not None:
            max_cost, spent = cap
            if (spent or 0.0) + reserved[job.batch_id] >= max_cost:
                handed_back.append(job.id)
                continue
            reserved[job.batch_id] += estimates.get(job.id, 0.0)
            job.cost_capped = True
        kept.append(job)
    if handed_back:
        connection.execute(
            jobs.update()
            .where(jobs.c.id.in_(handed_back))
            .values(status=JobStatus.QUEUED, worker_id=None, reserved_cost=None, started_at=None)
        )
    return kept


def ready_in(group: str, now: float) -> sa.Exists:
    """SQL: does ``group`` have a job ready to claim at ``now`` (the ready-jobs index answers)?"""
    return sa.exists().where(
        jobs.c.status == JobStatus.QUEUED, jobs.c.model_group == group, jobs.c.not_before <= now
    )


def ready_groups(connection: Connection, groups: Iterable[str], now: float) -> list[str]:
    """The groups among ``groups`` that have at least one job ready to claim."""
    groups = list(groups)
    if not groups:
        return []
    found = connection.execute(sa.select(*(ready_in(group, now) for group in groups))).one()
    return [group for group, ready in zip(groups, found) if ready]


def expire_due_jobs(connection: Connection, now: float) -> dict[str, int]:
    """End queued jobs whose completion window has passed; returns counts per batch."""
    rows = connection.execute(
        jobs.update()
        .where(jobs.c.status == JobStatus.QUEUED, jobs.c.expires_at <= now)
        .values(
            status=JobStatus.EXPIRED,
            finished_at=now,
            worker_id=None,
            error_code="batch_expired",
            error_message="This request could not be executed before the completion window expired.",
        )
        .returning(jobs.c.batch_id)
    ).scalars().all()
    counts: dict[str, int] = {}
    for batch_id in rows:
        counts[batch_id] = counts.get(batch_id, 0) + 1
    return counts


def fair_frontier(connection: Connection, group: str, priority: int, now: float,
                  exclude_batch: str | None = None) -> float:
    """Where a batch joining one (group, priority) level starts its fair positions under fair
    share: ``fair.frontier`` of the lowest position its ready jobs hold (``exclude_batch``: the
    batch being moved there)."""
    query = sa.select(sa.func.min(jobs.c.fair_key)).where(
        jobs.c.status == JobStatus.QUEUED,
        jobs.c.model_group == group,
        jobs.c.priority == priority,
        jobs.c.not_before <= now,
    )
    if exclude_batch is not None:
        query = query.where(jobs.c.batch_id != exclude_batch)
    return fair.frontier(connection.execute(query).scalar())


def queue_end(connection: Connection, group: str, priority: int) -> float:
    """Where a batch starts without fair share: ``fair.after_last`` of the highest position
    waiting at the level."""
    last = connection.execute(
        sa.select(sa.func.max(jobs.c.fair_key)).where(
            jobs.c.status == JobStatus.QUEUED, jobs.c.model_group == group, jobs.c.priority == priority
        )
    ).scalar()
    return fair.after_last(last)


def counts_by_state(connection: Connection) -> dict[str, int]:
    rows = connection.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()
    return {status: count for status, count in rows}


def queue_depth(connection: Connection) -> dict[tuple[str, int], int]:
    rows = connection.execute(
        sa.select(jobs.c.model_group, jobs.c.priority, sa.func.count())
        .where(jobs.c.status == JobStatus.QUEUED)
        .group_by(jobs.c.model_group, jobs.c.priority)
    ).all()
    return {(group, priority): count for group, priority, count in rows}


def queued_counts(connection: Connection) -> dict[str, int]:
    """Queued jobs per model group."""
    rows = connection.execute(
        sa.select(jobs.c.model_group, sa.func.count())
        .where(jobs.c.status == JobStatus.QUEUED)
        .group_by(jobs.c.model_group)
    ).all()
    return {group: count for group, count in rows}


def next_ready_time(connection: Connection, groups: Iterable[str]) -> float | None:
    """The earliest ``not_before`` among queued jobs of these groups (for delayed retries)."""
    return connection.execute(
        sa.select(sa.func.min(jobs.c.not_before)).where(
            jobs.c.status == JobStatus.QUEUED, jobs.c.model_group.in_(list(groups))
        )
    ).scalar()


def still_claimed(
    connection: Connection, claims: dict[int, int], *, postgres: bool
) -> set[int]:
    """Ids among ``claims`` (job id -> claim number) that are still running under that claim.

    Locks those rows on PostgreSQL so that nothing changes them before this transaction ends.
    """
    if not claims:
        return set()
    query = sa.select(jobs.c.id, jobs.c.claim).where(
        jobs.c.id.in_(list(claims)), jobs.c.status == JobStatus.RUNNING
    )
    if postgres:
        query = query.with_for_update()
    return {row.id for row in connection.execute(query) if claims.get(row.id) == row.claim}


def outcomes_written(connection: Connection, claims: dict[int, int]) -> set[int]:
    """Ids among ``claims`` whose outcome was written under that very claim already.

    Every hand-back bumps ``claim``, so a job no longer running under the claim the worker
    holds was ended or requeued by that worker: an earlier try of this write committed, and
    only its reply was lost.
    """
    if not claims:
        return set()
    query = sa.select(jobs.c.id, jobs.c.claim).where(
        jobs.c.id.in_(list(claims)), jobs.c.status != JobStatus.RUNNING
    )
    return {row.id for row in connection.execute(query) if claims.get(row.id) == row.claim}


# What a final result writes, each from its ``b_``-prefixed parameter (provider batch lines
# write the same columns: store/provider_batches.py).
RESULT_COLUMNS = (
    "status", "finished_at", "response_status", "response", "request_id", "error_code", "error_message",
    "deployment_id", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "cost", "latency_ms",
)


def result_values() -> dict[str, Any]:
    return {name: sa.bindparam(f"b_{name}") for name in RESULT_COLUMNS}


_FINISH = (
    jobs.update()
    .where(jobs.c.id == sa.bindparam("b_id"))
    .values(
        **result_values(),
        # The worker whose call the row holds (call_outcome), for the record; else none.
        worker_id=sa.bindparam("b_worker_id"),
        attempts=sa.bindparam("b_attempts"),
        groups_tried=sa.bindparam("b_groups_tried"),
        call_outcome=sa.bindparam("b_call_outcome"),
        reserved_cost=None,  # what the call cost is known now: no estimate to keep
    )
)

_REQUEUE = (
    jobs.update()
    .where(jobs.c.id == sa.bindparam("b_id"))
    .values(
        status=JobStatus.QUEUED,
        worker_id=None,
        not_before=sa.bindparam("b_not_before"),
        attempts=sa.bindparam("b_attempts"),
        retries=sa.bindparam("b_retries"),
        model_group=sa.bindparam("b_model_group"),
        groups_tried=sa.bindparam("b_groups_tried"),
        error_code=sa.bindparam("b_error_code"),
        error_message=sa.bindparam("b_error_message"),
    )
)


def finish_jobs(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Write final results; rows carry ``b_``-prefixed values (see ``_FINISH``). On
    PostgreSQL many rows go as one statement of arrays (finish_many.py)."""
    if len(rows) > 1 and connection.dialect.name == "postgresql":
        finish_jobs_postgres(connection, rows)
    elif rows:
        connection.execute(_FINISH, rows)


def requeue_jobs(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Put jobs back in the queue (a retry after ``not_before``, or a fallback group)."""
    if rows:
        connection.execute(_REQUEUE, rows)


_URGENT_READY = (
    sa.select(jobs.c.id)
    .where(
        jobs.c.status == JobStatus.QUEUED,
        jobs.c.model_group == sa.bindparam("group"),
        jobs.c.priority <= sa.bindparam("max_priority", type_=sa.Integer),
        jobs.c.not_before <= sa.bindparam("now", type_=sa.Float),
    )
    .limit(1)
)


def urgent_ready(connection: Connection, *, group: str, max_priority: int, now: float) -> bool:
    """Whether a job of ``group`` at ``max_priority`` or more urgent waits to be claimed (the
    ready-jobs index answers it)."""
    return connection.execute(
        _URGENT_READY, dict(group=group, max_priority=max_priority, now=now)
    ).first() is not None
