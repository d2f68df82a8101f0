"""The fleet's VACUUM of jobs (store/vacuum.py) on PostgreSQL: it runs once the table's dead
row versions are due, one worker per turn, and never where it is turned off or on SQLite."""

from __future__ import annotations

import time

import sqlalchemy as sa

from dispatcher.config.schema import VacuumSettings
from dispatcher.store import vacuum
from dispatcher.store.database import Database
from dispatcher.store.migrate import upgrade
from dispatcher.store.tables import jobs

ROWS = 3000


def dead_versions(database: Database) -> int:
    with database.read() as connection:
        connection.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        return connection.execute(vacuum._DEAD).one().n_dead_tup


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def jobs_updated_twice(database: Database) -> None:
    """ROWS jobs, each claimed and ended: two dead versions each, as a batch leaves them."""
    with database.write() as connection:
        connection.execute(jobs.insert(), [
            dict(batch_id="b", seq=i, custom_id=f"c{i}", model_group="chat", body="{}", status="queued",
                 created_at=1.0) for i in range(ROWS)
        ])
    for status in ("running", "succeeded"):
        with database.write() as connection:
            connection.execute(jobs.update().values(status=status))


def test_the_fleet_vacuums_jobs_once_its_dead_versions_are_due(postgres_url):
    database = Database(postgres_url)
    settings = VacuumSettings(interval=60.0)
    try:
        assert not vacuum.vacuum_if_my_turn(database, settings, now=100.0)  # nothing dead yet
        jobs_updated_twice(database)
        assert wait_for(lambda: dead_versions(database) >= 2 * ROWS), dead_versions(database)

        assert vacuum.vacuum_if_my_turn(database, settings, now=100.0)

        assert wait_for(lambda: dead_versions(database) == 0), dead_versions(database)
        with database.write() as connection:
            connection.execute(jobs.update().values(status="running"))
        assert wait_for(lambda: dead_versions(database) >= ROWS)
        # Due again, but the turn was taken for the interval: another worker does not run it.
        assert not vacuum.vacuum_if_my_turn(database, settings, now=130.0)
        assert vacuum.vacuum_if_my_turn(database, settings, now=161.0)
    finally:
        database.dispose()


def test_it_runs_only_on_postgresql_and_when_enabled(postgres_url, tmp_path):
    database = Database(postgres_url)
    try:
        jobs_updated_twice(database)
        assert wait_for(lambda: dead_versions(database) >= 2 * ROWS)
        assert not vacuum.vacuum_if_my_turn(database, VacuumSettings(enabled=False), now=1.0)
        assert dead_versions(database) >= 2 * ROWS
    finally:
        database.dispose()
    sqlite = Database(f"sqlite:///{tmp_path / 'v.db'}")
    try:
        upgrade(sqlite)
        with sqlite.read() as connection:
            assert not vacuum.wanted(connection, True)
        assert not vacuum.vacuum_if_my_turn(sqlite, VacuumSettings(), now=1.0)
    finally:
        sqlite.dispose()


def test_a_vacuum_already_running_elsewhere_is_not_queued_behind(postgres_url):
    database = Database(postgres_url)
    try:
        jobs_updated_twice(database)
        assert wait_for(lambda: dead_versions(database) >= 2 * ROWS)
        holder = sa.create_engine(postgres_url)
        with holder.connect() as other:
            assert other.execute(vacuum._TRY_LOCK).scalar()  # another worker's VACUUM
            assert not vacuum.vacuum_if_my_turn(database, VacuumSettings(), now=1.0)
            other.execute(vacuum._UNLOCK)
            other.commit()
        holder.dispose()
        assert dead_versions(database) >= 2 * ROWS  # nothing ran
    finally:
        database.dispose()
