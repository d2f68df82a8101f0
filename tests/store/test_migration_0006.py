"""Migration 0006 (API keys and files) upgrades a database at 0005 that holds batches, on
both databases, to exactly the schema the models describe."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from dispatcher.store.database import Database
from dispatcher.store.migrate import SCHEMA_HEAD, current_revision, upgrade
from tests.store.test_migrations import schema_differences


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("empty_postgres_url")


def test_a_database_at_0005_with_batches_upgrades_to_0006(empty_database_url):
    database = Database(empty_database_url)
    try:
        upgrade(database, "0005")
        assert current_revision(database) == "0005"
        with database.write() as connection:
            # The columns a 0005 batch row has (the new ones do not exist yet).
            connection.execute(sa.text(
                "INSERT INTO batches (id, status, endpoint, priority, weight, completion_window, created_at, "
                "total, succeeded, failed, cancelled, expired, prompt_tokens, completion_tokens, total_tokens, "
                "cached_tokens, cost, cost_unknown, cache_mode) VALUES ('batch_old', 'completed', "
                "'/v1/chat/completions', 5, 1.0, '24h', :now, 1, 1, 0, 0, 0, 3, 4, 7, 0, 0.5, 0, 0)"
            ), {"now": time.time()})

        upgrade(database)

        assert current_revision(database) == SCHEMA_HEAD  # 0006, then the later ones
        assert schema_differences(database) == []
        with database.write() as connection:
            old = connection.execute(sa.text(
                "SELECT id, total, cost, owner, input_file_id, kind FROM batches")).one()
            # Kept, owned by nobody (direct), and a batch (0007), not a completion.
            assert tuple(old) == ("batch_old", 1, 0.5, None, None, "batch")
            # The new tables take rows.
            connection.execute(sa.text(
                "INSERT INTO api_keys (id, name, secret_hash, created_at) VALUES ('key_1', 'team', :h, 1.0)"
            ), {"h": "0" * 64})
            connection.execute(sa.text(
                "INSERT INTO files (id, owner, filename, purpose, bytes, created_at, status) "
                "VALUES ('file-1', 'key_1', 'in.jsonl', 'batch', 3, 1.0, 'processed')"))
            connection.execute(sa.text("INSERT INTO file_parts (file_id, seq, data) VALUES ('file-1', 0, :d)"),
                               {"d": b"a\x00b"})
            assert connection.execute(sa.text("SELECT data FROM file_parts")).scalar() == b"a\x00b"
    finally:
        database.dispose()
