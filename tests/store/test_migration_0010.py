"""Migration 0010 (packed bodies, retention columns) upgrades a database at 0009 that holds
jobs, on both databases: bodies stored as text before read back unchanged, new ones are
packed; the downgrade gives text back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dispatcher.store.bodies import DEFLATED
from dispatcher.store.database import Database
from dispatcher.store.migrate import SCHEMA_HEAD, current_revision, upgrade
from dispatcher.store.tables import jobs
from tests.store.test_migrations import schema_differences

OLD_BODY = '{"messages": [{"role": "user", "content": "stored before 0010"}]}'
OLD_RESPONSE = '{"id": "chatcmpl-old", "choices": [], "usage": {"prompt_tokens": 3}}'


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("empty_postgres_url")


def insert_old_job(database: Database) -> None:
    with database.write() as connection:
        connection.execute(sa.text(
            "INSERT INTO batches (id, status, endpoint, priority, weight, completion_window, created_at, "
            "total, succeeded, failed, cancelled, expired, prompt_tokens, completion_tokens, total_tokens, "
            "cached_tokens, cost, cost_unknown, cache_mode, kind, via) VALUES ('batch_old', 'completed', "
            "'/v1/chat/completions', 5, 1.0, '24h', 1.0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0.0, 0, 0, 'batch', 'realtime')"))
        connection.execute(sa.text(
            "INSERT INTO jobs (batch_id, seq, custom_id, model_group, priority, fair_key, body, response, "
            "est_prompt_tokens, est_completion_tokens, status, claim, not_before, cache_mode, awaited, "
            "attempts, worker_deaths, retries, created_at) VALUES ('batch_old', 0, 'old-1', 'chat', 5, 0.0, "
            ":body, :response, 3, 16, 'succeeded', 1, 0.0, 0, false, 1, 0, 0, 1.0)"),
            {"body": OLD_BODY, "response": OLD_RESPONSE})


def test_a_database_at_0009_with_jobs_upgrades_to_0010_and_back(empty_database_url):
    database = Database(empty_database_url)
    try:
        upgrade(database, "0009")
        insert_old_job(database)

        upgrade(database)

        assert current_revision(database) == SCHEMA_HEAD
        assert schema_differences(database) == []
        new_body = '{"messages": [{"role": "user", "content": "stored after 0010, stored after 0010"}]}'
        with database.write() as connection:
            row = connection.execute(sa.select(jobs.c.body, jobs.c.response)).one()
            assert (row.body, row.response) == (OLD_BODY, OLD_RESPONSE)
            connection.execute(jobs.insert().values(
                batch_id="batch_old", seq=1, custom_id="new-1", model_group="chat", body=new_body,
                status="queued", created_at=2.0))
            stored = connection.execute(
                sa.select(sa.cast(jobs.c.body, sa.LargeBinary)).where(jobs.c.seq == 1)).scalar()
            assert bytes(stored).startswith(DEFLATED)

        upgrade_back(database)
        with database.read() as connection:
            assert connection.execute(sa.text("SELECT body FROM jobs ORDER BY seq")).scalars().all() == [
                OLD_BODY, new_body]
    finally:
        database.dispose()


def upgrade_back(database: Database) -> None:
    from alembic import command

    from dispatcher.store.migrate import alembic_config

    config = alembic_config(database)
    with database.write() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
