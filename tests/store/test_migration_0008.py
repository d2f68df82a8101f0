"""Migration 0008 (jobs.endpoint) upgrades a database at 0007 that holds jobs, on both
databases: the jobs already stored stay chat completions (NULL) and are still claimed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dispatcher.store import jobs as job_sql
from dispatcher.store.database import Database
from dispatcher.store.migrate import SCHEMA_HEAD, current_revision, upgrade
from tests.store.test_migrations import schema_differences


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("empty_postgres_url")


def test_a_database_at_0007_with_jobs_upgrades_to_0008(empty_database_url):
    database = Database(empty_database_url)
    try:
        upgrade(database, "0007")
        with database.write() as connection:
            connection.execute(sa.text(
                "INSERT INTO batches (id, status, endpoint, priority, weight, completion_window, created_at, "
                "total, succeeded, failed, cancelled, expired, prompt_tokens, completion_tokens, total_tokens, "
                "cached_tokens, cost, cost_unknown, cache_mode, kind) VALUES ('batch_old', 'in_progress', "
                "'/v1/chat/completions', 5, 1.0, '24h', 1.0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0, 0, 'batch')"))
            connection.execute(sa.text(
                "INSERT INTO jobs (batch_id, seq, custom_id, model_group, priority, fair_key, body, "
                "est_prompt_tokens, est_completion_tokens, status, claim, not_before, cache_mode, awaited, "
                "attempts, worker_deaths, retries, created_at) VALUES ('batch_old', 0, 'old-1', 'chat', 5, 0.0, "
                "'{\"messages\": []}', 3, 16, 'queued', 0, 0.0, 0, false, 0, 0, 0, 1.0)"))

        upgrade(database)

        assert current_revision(database) == SCHEMA_HEAD
        assert schema_differences(database) == []
        with database.write() as connection:
            [claimed] = job_sql.claim_jobs(connection, group="chat", worker_id="w", limit=5, now=2.0,
                                           deployment_id="chat#0", input_price=0.0, output_price=0.0,
                                           postgres=not database.is_sqlite)
        assert (claimed.custom_id, claimed.endpoint) == ("old-1", None)
    finally:
        database.dispose()
