"""The claim order: one definition, followed by the claim statement and the ready index."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

import sqlalchemy as sa

from dispatcher.scheduling.order import CLAIM_ORDER, start_order
from dispatcher.store import jobs as job_sql
from dispatcher.store.tables import JobStatus, batches, jobs
from tests.store.test_claims import make_database


def test_the_ready_index_lists_the_claim_order_after_the_group():
    index = next(i for i in jobs.indexes if i.name == "ix_jobs_ready")
    assert tuple(column.name for column in index.columns) == ("model_group", *CLAIM_ORDER)


def test_claims_take_jobs_in_the_claim_order(database_url):
    database = make_database(database_url)
    now = time.time()
    rng = random.Random(12)
    with database.write() as connection:
        for batch_id in ("batch_a", "batch_b"):
            connection.execute(batches.insert().values(id=batch_id, status="in_progress",
                                                       created_at=now, total=12))
            # Few distinct values, so that ties fall through to the next column.
            job_sql.insert_jobs(connection, [
                dict(batch_id=batch_id, seq=seq, custom_id=f"{batch_id}-{seq}", model_group="chat",
                     priority=rng.choice([0, 5]), fair_key=rng.choice([0.0, 0.5, 1.0]),
                     body="{}", status=JobStatus.QUEUED, created_at=now)
                for seq in range(12)
            ])
        rows = connection.execute(sa.select(*[jobs.c[name] for name in CLAIM_ORDER])).all()
    expected = [row.id for row in sorted(rows, key=tuple)]
    claimed = []
    for _ in rows:
        with database.write() as connection:
            claimed += job_sql.claim_jobs(connection, group="chat", limit=1, worker_id="w",
                                          now=time.time(), postgres=not database.is_sqlite)
    assert [job.id for job in claimed] == expected
    database.dispose()


def test_the_jobs_of_one_claim_start_most_urgent_first_then_by_id():
    claimed = [SimpleNamespace(priority=p, id=i) for p, i in [(5, 1), (0, 9), (5, 0), (0, 3)]]
    assert [(j.priority, j.id) for j in sorted(claimed, key=start_order)] == [(0, 3), (0, 9), (5, 0), (5, 1)]
