"""Benchmark: the cost of one claim on PostgreSQL while a large batch is being stored.

    python bench/claim_cost.py [--jobs 50000] [--claims 200]

A batch of JOBS runnable jobs waits in one group. Scenarios:

idle        nothing else in the queue.
interleaved a second batch of JOBS jobs is still being stored (status ``validating``) at the
            same priority; with fair sharing its jobs sit between the runnable ones.
in front    the batch being stored is more urgent (priority 0): every one of its jobs sorts
            before the runnable ones (the worst case for a claim that must skip them).

Each claim (64 jobs, the default claim_batch) runs in a transaction that is rolled back, so
every repetition sees the same queue. Prints the median and p95 wall time of a claim and the
server's CPU per claim (pg_stat_statements is not needed: EXPLAIN ANALYZE's execution time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event  # noqa: E402

from bench.common import fresh_postgres_schema  # noqa: E402
from dispatcher.store import jobs as job_sql  # noqa: E402
from dispatcher.store.database import Database  # noqa: E402
from dispatcher.store.tables import BatchStatus, JobStatus, batches  # noqa: E402

CLAIM_BATCH = 64


def add_batch(database: Database, batch_id: str, count: int, *, status: str, priority: int,
              interleave: bool) -> None:
    now = time.time()
    with database.write() as connection:
        connection.execute(batches.insert().values(
            id=batch_id, status=status, created_at=now, total=count, priority=priority))
        for start in range(0, count, 5000):
            job_sql.insert_jobs(connection, [
                dict(batch_id=batch_id, seq=seq, custom_id=f"r-{seq}", model_group="chat",
                     priority=priority, fair_key=seq + (0.5 if interleave else 0.0),
                     body='{"messages":[{"role":"user","content":"hello"}]}',
                     status=JobStatus.QUEUED, created_at=now)
                for seq in range(start, min(count, start + 5000))
            ])
    with database.write() as connection:
        connection.exec_driver_sql("ANALYZE jobs")
        connection.exec_driver_sql("ANALYZE batches")


def time_claims(database: Database, claims: int) -> tuple[float, float, float]:
    """(median ms, p95 ms, median server execution ms) of one rolled-back claim."""
    statement = job_sql._CLAIM[True]
    params = dict(group="chat", limit=CLAIM_BATCH, worker_id="bench", now=time.time(),
                  input_price=0.0, output_price=0.0, deployment_id=None)
    walls = []
    with database.writer.connect() as connection:
        for _ in range(claims):
            transaction = connection.begin()
            started = time.perf_counter()
            rows = connection.execute(statement, params).all()
            walls.append((time.perf_counter() - started) * 1000)
            transaction.rollback()
            assert len(rows) == CLAIM_BATCH, len(rows)
    server = []
    with database.writer.connect() as connection:
        # The same statement, as the server plans and runs it (EXPLAIN ANALYZE executes it).
        event.listen(connection, "before_cursor_execute", _explain, retval=True)
        for _ in range(max(1, claims // 10)):
            transaction = connection.begin()
            plan = connection.execute(statement, params).scalar()
            server.append(plan[0]["Execution Time"])
            transaction.rollback()
    walls.sort()
    return statistics.median(walls), walls[int(len(walls) * 0.95)], statistics.median(server)


def _explain(connection, cursor, statement, parameters, context, executemany):
    return "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--claims", type=int, default=200)
    args = parser.parse_args()
    scenarios = [("idle", None), ("interleaved", 5), ("in front", 0)]
    for name, storing_priority in scenarios:
        database = Database(fresh_postgres_schema())
        try:
            add_batch(database, "batch_runnable", args.jobs, status=BatchStatus.IN_PROGRESS,
                      priority=5, interleave=False)
            if storing_priority is not None:
                add_batch(database, "batch_storing", args.jobs, status=BatchStatus.VALIDATING,
                          priority=storing_priority, interleave=True)
            median, p95, server = time_claims(database, args.claims)
            print(f"{name:12s} claim of {CLAIM_BATCH}: median {median:.2f} ms, p95 {p95:.2f} ms, "
                  f"server execution {server:.2f} ms")
        finally:
            database.dispose()


if __name__ == "__main__":
    main()
