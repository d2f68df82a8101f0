"""Claims: most urgent first, each job to one claimant, results fenced by the claim number."""

from __future__ import annotations

import threading
import time
import uuid

import sqlalchemy as sa

from dispatcher.store import jobs as job_sql
from dispatcher.store import workers as worker_sql
from dispatcher.store.database import Database
from dispatcher.store.migrate import upgrade
from dispatcher.store.tables import JobStatus, batches, jobs


def make_database(url: str) -> Database:
    database = Database(url)
    upgrade(database)
    return database


def add_jobs(database: Database, specs: list[tuple[int, str]], batch_id: str = "batch_t") -> None:
    """specs: (priority, custom_id) in submit order."""
    now = time.time()
    with database.write() as connection:
        connection.execute(batches.insert().values(id=batch_id, status="in_progress", created_at=now, total=len(specs)))
        job_sql.insert_jobs(connection, [
            dict(batch_id=batch_id, seq=seq, custom_id=custom_id, model_group="chat", priority=priority,
                 fair_key=float(seq), body='{"messages":[]}', status=JobStatus.QUEUED, created_at=now)
            for seq, (priority, custom_id) in enumerate(specs)
        ])


def claim(database: Database, limit: int, worker: str = "w1", deployment: str | None = None):
    with database.write() as connection:
        return job_sql.claim_jobs(connection, group="chat", limit=limit, worker_id=worker,
                                  now=time.time(), postgres=not database.is_sqlite,
                                  deployment_id=deployment)


def test_claims_take_the_most_urgent_jobs_first(database_url):
    database = make_database(database_url)
    try:
        add_jobs(database, [(9, "bulk-1"), (9, "bulk-2"), (0, "urgent"), (5, "normal"), (9, "bulk-3")])
        first = claim(database, 2)
        assert [j.custom_id for j in first] == ["urgent", "normal"]
        rest = claim(database, 10)
        assert [j.custom_id for j in rest] == ["bulk-1", "bulk-2", "bulk-3"]
        assert claim(database, 10) == []
    finally:
        database.dispose()


def test_concurrent_claimants_never_share_a_job(database_url):
    database = make_database(database_url)
    try:
        add_jobs(database, [(5, f"job-{i}") for i in range(300)])
        claimed: dict[str, list[int]] = {}

        def claimant(name: str) -> None:
            mine = []
            while True:
                got = claim(database, 7, worker=name)
                if not got:
                    break
                mine += [j.id for j in got]
            claimed[name] = mine

        threads = [threading.Thread(target=claimant, args=(f"w{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        all_ids = [i for ids in claimed.values() for i in ids]
        assert len(all_ids) == 300 and len(set(all_ids)) == 300
    finally:
        database.dispose()


def test_a_result_is_recorded_only_under_the_current_claim(database_url):
    database = make_database(database_url)
    try:
        add_jobs(database, [(5, "only")])
        [first] = claim(database, 1, worker="old", deployment="chat#1")
        with database.write() as connection:  # the old worker is declared dead
            worker_sql.register_worker(connection, worker_id="old", hostname="h", pid=1, concurrency=1, groups=["chat"])
            released = worker_sql.reap_worker(connection, "old", time.time(), "test")
        assert [r[0] for r in released] == [first.id]
        [second] = claim(database, 1, worker="new")
        assert second.claim > first.claim  # the hand-back and the new claim each bump it
        with database.write() as connection:
            valid = job_sql.still_claimed(connection, {first.id: first.claim}, postgres=not database.is_sqlite)
            assert valid == set()  # the old claim is fenced off
            valid = job_sql.still_claimed(connection, {second.id: second.claim}, postgres=not database.is_sqlite)
            assert valid == {second.id}
        with database.read() as connection:
            attempt_outcomes = connection.execute(sa.text("SELECT outcome, deployment_id FROM attempts")).all()
            status = connection.execute(sa.select(jobs.c.status, jobs.c.attempts)).one()
        # The abandoned call is booked to the deployment it was granted (usage by deployment).
        assert [tuple(row) for row in attempt_outcomes] == [("abandoned", "chat#1")]
        assert status == (JobStatus.RUNNING, 1)
    finally:
        database.dispose()


def test_one_claim_never_takes_more_than_a_batch_budget_has_room_for(database_url):
    database = make_database(database_url)
    try:
        budgeted = f"budgeted_{uuid.uuid4().hex}"  # batch ids are unique; claims remember them
        add_jobs(database, [(5, f"b-{i}") for i in range(10)], batch_id=budgeted)
        add_jobs(database, [(5, f"free-{i}") for i in range(3)], batch_id="no_budget")
        with database.write() as connection:
            connection.execute(jobs.update().values(est_prompt_tokens=1, est_completion_tokens=0))
            # Spent 0.5 of 4.0; each call is estimated at 1.0 (1 prompt token at 1.0 per token).
            connection.execute(batches.update().where(batches.c.id == budgeted).values(max_cost=4.0, cost=0.5))
        with database.write() as connection:
            claimed = job_sql.claim_jobs(connection, group="chat", limit=20, worker_id="w", now=time.time(),
                                         postgres=not database.is_sqlite, input_price=1.0, output_price=0.0)
        # 0.5 + 3 x 1.0 = 3.5 < 4.0, so a fourth may start; a fifth may not.
        assert sorted(j.custom_id for j in claimed if j.batch_id == budgeted) == ["b-0", "b-1", "b-2", "b-3"]
        assert sum(j.batch_id == "no_budget" for j in claimed) == 3
        with database.read() as connection:
            queued = connection.execute(
                sa.select(sa.func.count()).where(jobs.c.status == JobStatus.QUEUED, jobs.c.worker_id.is_(None),
                                                 jobs.c.reserved_cost.is_(None))
            ).scalar()
        assert queued == 6  # handed back whole, ready for later
    finally:
        database.dispose()
