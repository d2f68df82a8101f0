"""Migration 0011 (a job row holds the call that gave its result): a database at 0010 upgrades
with its attempts rows as they were, and the downgrade gives the calls held by job rows their
attempts rows back, so usage reports the same before and after, on both databases."""

from __future__ import annotations

import sqlalchemy as sa

from dispatcher.store.database import Database
from dispatcher.store.migrate import SCHEMA_HEAD, alembic_config, current_revision, upgrade
from dispatcher.store.usage import usage_report
from tests.store.test_migration_0010 import empty_database_url, insert_old_job  # noqa: F401 - a fixture
from tests.store.test_migrations import schema_differences


def downgrade_to(database: Database, revision: str) -> None:
    from alembic import command

    config = alembic_config(database)
    with database.write() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_a_database_at_0010_upgrades_and_its_job_held_calls_come_back_as_attempts(empty_database_url):
    database = Database(empty_database_url)
    try:
        upgrade(database, "0010")
        insert_old_job(database)
        with database.write() as connection:
            connection.execute(sa.text(
                "INSERT INTO attempts (job_id, batch_id, number, claim, model_group, deployment_id, started_at, "
                "ended_at, latency_ms, outcome, status_code, prompt_tokens, completion_tokens, total_tokens, cost) "
                "SELECT id, batch_id, 1, 1, 'chat', 'chat#0', 1.0, 1.5, 500.0, 'success', 200, 3, 5, 8, 0.25 FROM jobs"))

        upgrade(database)

        assert current_revision(database) == SCHEMA_HEAD
        assert schema_differences(database) == []
        with database.write() as connection:
            assert connection.execute(sa.text("SELECT call_outcome FROM jobs")).scalars().all() == [None]
            # A job that succeeded since: its row holds the call.
            connection.execute(sa.text(
                "INSERT INTO jobs (batch_id, seq, custom_id, model_group, priority, fair_key, "
                "est_prompt_tokens, est_completion_tokens, status, claim, not_before, cache_mode, awaited, "
                "attempts, worker_deaths, retries, created_at, finished_at, latency_ms, deployment_id, "
                "response_status, prompt_tokens, completion_tokens, total_tokens, cost, call_outcome, worker_id) "
                "VALUES ('batch_old', 1, 'new-1', 'chat', 5, 1.0, 3, 16, 'succeeded', 1, 0.0, 0, false, 1, 0, 0, "
                "2.0, 3.0, 250.0, 'chat#0', 200, 4, 6, 10, 0.5, 'success', 'w1')"))
            before = usage_report(connection, by="deployment")
        assert [(r["requests"], r["total_tokens"], r["cost"]) for r in before] == [(2, 18, 0.75)]

        downgrade_to(database, "0010")

        with database.read() as connection:
            rows = connection.execute(sa.text(
                "SELECT number, outcome, started_at, ended_at, total_tokens, cost FROM attempts ORDER BY ended_at"
            )).all()
        assert [tuple(row) for row in rows] == [(1, "success", 1.0, 1.5, 8, 0.25), (1, "success", 2.75, 3.0, 10, 0.5)]
    finally:
        database.dispose()
