"""Membership on a real database: heartbeats, the lease, taking over a silent worker's jobs."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from dispatcher.config.schema import WorkerSettings
from dispatcher.engine.db_access import DatabaseAccess
from dispatcher.engine.membership import Membership
from dispatcher.store import jobs as job_sql
from dispatcher.store.clock import DatabaseClock
from dispatcher.store.database import Database
from dispatcher.store.tables import BatchStatus, JobStatus, batches, file_parts, files, jobs, workers

SETTINGS = WorkerSettings(heartbeat_interval=0.1, dead_after=0.4)


def member(db: DatabaseAccess, worker_id: str, requeued: list) -> Membership:
    return Membership(worker_id=worker_id, groups=["chat"], concurrency=4, settings=SETTINGS, db=db,
                      clock=DatabaseClock(), on_requeued=requeued.append)


def claim_one(database: Database, worker_id: str) -> None:
    now = time.time()
    with database.write() as connection:
        connection.execute(batches.insert().values(id="b1", status=BatchStatus.IN_PROGRESS, created_at=now, total=1))
        job_sql.insert_jobs(connection, [dict(batch_id="b1", seq=0, custom_id="a", model_group="chat", priority=5,
                                              fair_key=0.0, body="{}", status=JobStatus.QUEUED, created_at=now)])
        [_job] = job_sql.claim_jobs(connection, group="chat", limit=1, worker_id=worker_id, now=now,
                                    postgres=not database.is_sqlite)


@pytest.fixture
def db(database):
    access = DatabaseAccess(database)
    yield access
    access.close()


def test_a_silent_worker_is_taken_over_and_learns_it_when_it_wakes(database, db):
    requeued: list[set[str]] = []
    steady, silent = member(db, "steady", requeued), member(db, "silent", requeued)

    async def scenario():
        await steady.register()
        await silent.register()
        epoch = silent.lease.epoch
        claim_one(database, "silent")
        assert await silent.holds_lease(epoch)
        # The silent one stops heartbeating; the steady one keeps on for a whole dead_after
        # (its own heartbeat must be steady before it may judge others).
        deadline = time.monotonic() + SETTINGS.dead_after + 0.3
        while time.monotonic() < deadline:
            await steady.renew_lease()
            await asyncio.sleep(SETTINGS.heartbeat_interval)
        assert steady.others_dead  # its heartbeat saw the silent one: time to take over
        await steady.take_over_dead_workers()
        assert not steady.others_dead
        await steady.renew_lease()
        assert not steady.others_dead  # the silent one is declared dead: not seen again
        held_after_wake = await silent.holds_lease(epoch)
        return held_after_wake, silent.lease.epoch

    held_after_wake, new_epoch = asyncio.run(scenario())
    with database.read() as connection:
        [job] = connection.execute(jobs.select()).all()
        [row] = connection.execute(workers.select().where(workers.c.id == "silent")).all()
    assert requeued == [{"chat"}]
    assert (job.status, job.worker_id, job.claim) == (JobStatus.QUEUED, None, 2)
    # The silent worker's old claims are not its own any more; it registered again.
    assert held_after_wake is False and new_epoch == 1
    assert row.stopped_at is None


def test_an_idle_workers_poll_rides_on_its_heartbeat(database, db):
    requeued: list[set[str]] = []
    idle = member(db, "idle", requeued)

    async def scenario():
        await idle.register()
        before = await idle.renew_lease(look_in=["chat", "embed"])
        claim_one(database, "elsewhere")  # a running job is not a ready one
        running = await idle.renew_lease(look_in=["chat"])
        with database.write() as connection:
            connection.execute(jobs.update().values(status=JobStatus.QUEUED, worker_id=None))
        ready = await idle.renew_lease(look_in=["chat", "embed"])
        not_asked = await idle.renew_lease()
        return before, running, ready, not_asked

    assert asyncio.run(scenario()) == ([], [], ["chat"], [])


def test_a_worker_whose_own_heartbeat_is_not_steady_takes_over_nobody(database, db):
    requeued: list[set[str]] = []
    fresh, silent = member(db, "fresh", requeued), member(db, "silent", requeued)

    async def scenario():
        await silent.register()
        claim_one(database, "silent")
        await asyncio.sleep(SETTINGS.dead_after + 0.1)
        await fresh.register()  # just back (after an outage, say): every heartbeat looks old
        await fresh.take_over_dead_workers()

    asyncio.run(scenario())
    with database.read() as connection:
        [job] = connection.execute(jobs.select()).all()
    assert requeued == [] and job.worker_id == "silent"


def test_housekeeping_deletes_expired_files_and_dropped_uploads(database, db):
    from dispatcher.store import files as file_sql

    now = time.time()
    with database.write() as connection:
        for file_id, expires_at in (("file-old", now - 1), ("file-live", now + 3600), ("file-kept", None)):
            file_sql.create_file(connection, file_id=file_id, owner=None, filename="in.jsonl",
                                 purpose="batch", now=now)
            file_sql.add_part(connection, file_id, 0, b"{}\n", now)
            file_sql.finish_file(connection, file_id, 3, expires_at)
        # An upload whose writer died: its lease lapsed without the last part.
        file_sql.create_file(connection, file_id="file-dropped", owner=None, filename="in.jsonl",
                             purpose="batch", now=now - 3600)
    requeued: list[set[str]] = []
    asyncio.run(member(db, "w", requeued).tidy())
    with database.read() as connection:
        left = sorted(connection.execute(sa.select(file_parts.c.file_id).distinct()).scalars())
        rows = sorted(connection.execute(sa.select(files.c.id)).scalars())
    assert rows == ["file-kept", "file-live"] and left == ["file-kept", "file-live"]
