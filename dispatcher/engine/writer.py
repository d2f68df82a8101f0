"""Writes outcomes in batches: one transaction for many jobs, never a lost result.

A result a caller waits for (an awaited job: a chat completion) is written at once, taking
whatever else is pending along; other results wait up to ``flush_interval`` for company.

Slots are freed only after an outcome is committed, so a slow database slows claiming
instead of growing memory. A flush that fails on a transient error (``is_transient``: the
database unreachable or busy) is retried until the database is back; the outcomes stay in
memory meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Awaitable, Callable

from dispatcher.engine.outcomes import Outcome
from dispatcher.errors import is_transient
from dispatcher.store import batches as batch_sql
from dispatcher.store import jobs as job_sql
from dispatcher.store.attempts import record_attempts
from dispatcher.store.database import Database
from dispatcher.store.tables import JobStatus

log = logging.getLogger(__name__)

RunInThread = Callable[..., Awaitable]
MAX_RETRY_WAIT_S = 5.0


def write_outcomes(database: Database, outcomes: list[Outcome], now: float | None = None) -> set[int]:
    """Apply outcomes in one transaction; returns the job ids whose result is on record.

    A job whose claim moved on (its worker was judged dead and the job was taken over) keeps
    the other worker's result: its outcome here is dropped, but its attempt row is kept,
    because the provider call did happen.

    Idempotent: when a COMMIT reply is lost, the writer cannot tell whether the transaction
    committed, and writes the same outcomes again. Jobs already ended or requeued under this
    claim count as recorded and are left alone; attempt rows already there are not added again,
    and their usage and cost are not counted twice.

    ``now``: on the database's clock (the engine's DatabaseClock); batches' end times.
    """
    now = time.time() if now is None else now
    with database.write() as connection:
        claims = {o.job.id: o.job.claim for o in outcomes}
        valid = job_sql.still_claimed(connection, claims, postgres=not database.is_sqlite)
        written = job_sql.outcomes_written(
            connection, {job_id: claim for job_id, claim in claims.items() if job_id not in valid}
        )
        finals = [o.finish_row() for o in outcomes if o.is_final and o.job.id in valid]
        requeues = [o.requeue_row() for o in outcomes if not o.is_final and o.job.id in valid]
        job_sql.finish_jobs(connection, finals)
        job_sql.requeue_jobs(connection, requeues)
        batch_sql.cancel_requeued_jobs_of_cancelled_batches(
            connection, [row["b_id"] for row in requeues], now
        )
        # A success written under its claim (now, or by an earlier try of this write) holds its
        # call on the job row; every other call is an attempts row.
        recorded = valid | written
        on_job_row = {o.job.id for o in outcomes if o.holds_call and o.job.id in recorded}
        new_attempts = record_attempts(connection, [
            o.attempt.row(o.job) for o in outcomes
            if o.attempt is not None and o.job.id not in on_job_row
        ])
        new_attempts |= {(o.job.id, o.job.claim) for o in outcomes if o.job.id in on_job_row & valid}
        batch_sql.add_counters(connection, _batch_deltas(outcomes, valid, new_attempts))
        # Only batches with a max_cost can reach it (the claim marks their jobs cost_capped).
        batch_sql.stop_at_cost_cap(connection, {o.job.batch_id for o in outcomes if o.job.cost_capped}, now)
        batch_sql.finish_if_done(
            connection, {o.job.batch_id for o in outcomes if o.is_final}, now
        )
    return recorded


def _batch_deltas(
    outcomes: list[Outcome], valid: set[int], new_attempts: set[tuple[int, int]]
) -> dict[str, dict[str, float]]:
    """Counter changes per batch; ``new_attempts``: (job, claim) of the calls recorded now."""
    deltas: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for outcome in outcomes:
        delta = deltas[outcome.job.batch_id]
        if outcome.is_final and outcome.job.id in valid:
            key = "succeeded" if outcome.status == JobStatus.SUCCEEDED else "failed"
            delta[key] += 1
        attempt = outcome.attempt
        if attempt is None or (outcome.job.id, outcome.job.claim) not in new_attempts:
            continue  # no call, or its usage was counted when its row was first written
        if attempt.usage is not None:
            usage = attempt.usage
            delta["prompt_tokens"] += usage.prompt_tokens
            delta["completion_tokens"] += usage.completion_tokens
            delta["total_tokens"] += usage.total_tokens
            delta["cached_tokens"] += usage.cached_tokens or 0
            if attempt.cost is None:
                delta["cost_unknown"] += 1
            else:
                delta["cost"] += attempt.cost
    return deltas


class OutcomeWriter:
    """Collects outcomes from job tasks and flushes them in batches."""

    def __init__(
        self,
        database: Database,
        run_in_thread: RunInThread,
        on_written: Callable[[list[Outcome], set[int]], None],
        *,
        flush_interval: float,
        flush_size: int,
        clock: Callable[[], float] = time.time,
    ):
        self._database = database
        self._run_in_thread = run_in_thread
        self._on_written = on_written
        self._flush_interval = flush_interval
        self._flush_size = flush_size
        self._clock = clock
        self._pending: list[Outcome] = []
        self._has_pending = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._closing = False

    def add(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._has_pending.set()
        # A caller waits for an awaited job's result: write it now, with whatever is pending.
        if len(self._pending) >= self._flush_size or outcome.job.awaited:
            self._flush_now.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Flush until ``close`` is called and nothing is left."""
        while True:
            await self._has_pending.wait()
            if not self._closing and len(self._pending) < self._flush_size:
                # Let a few more outcomes arrive so one transaction carries many.
                try:
                    async with asyncio.timeout(self._flush_interval):
                        await self._flush_now.wait()
                except TimeoutError:
                    pass
            batch, self._pending = self._pending, []
            self._has_pending.clear()
            self._flush_now.clear()
            if batch:
                await self._flush(batch)
            if self._closing and not self._pending:
                return

    async def _flush(self, batch: list[Outcome]) -> None:
        wait = 0.1
        while True:
            try:
                valid = await self._run_in_thread(write_outcomes, self._database, batch, self._clock())
                break
            except Exception as exc:  # noqa: BLE001 - decide below whether to retry
                if not is_transient(exc):
                    raise
                log.warning(
                    "could not record %d results (%s); retrying in %.1fs",
                    len(batch), exc, wait,
                )
                await asyncio.sleep(wait)
                wait = min(wait * 2, MAX_RETRY_WAIT_S)
        stale = len(batch) - len([o for o in batch if o.job.id in valid])
        if stale:
            log.info("%d results were dropped: their jobs had been taken over", stale)
        self._on_written(batch, valid)

    async def close(self) -> None:
        """Ask ``run`` to flush what is left and return."""
        self._closing = True
        self._has_pending.set()
        self._flush_now.set()
