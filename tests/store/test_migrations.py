"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dispatcher.errors import UsageError
from dispatcher.store.database import Database
from dispatcher.store.migrate import SCHEMA_HEAD, current_revision, ensure_schema, head_revision, upgrade
from dispatcher.store.tables import metadata


def schema_differences(database: Database) -> list:
    with database.read() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def test_upgrade_head_on_empty_database_matches_models(database_url):
    database = Database(database_url)
    try:
        upgrade(database)
        assert current_revision(database) == head_revision(database)
        assert schema_differences(database) == []
        upgrade(database)  # idempotent
        assert current_revision(database) == head_revision(database)
    finally:
        database.dispose()


def test_new_sqlite_file_is_migrated_automatically(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        ensure_schema(database)
        assert current_revision(database) == head_revision(database)
    finally:
        database.dispose()


def test_empty_postgres_asks_for_db_upgrade(empty_postgres_url):
    database = Database(empty_postgres_url)
    try:
        try:
            ensure_schema(database)
        except UsageError as exc:
            assert "llm-dispatch db upgrade" in str(exc)
        else:
            raise AssertionError("an empty PostgreSQL schema must not be used silently")
    finally:
        database.dispose()


def test_the_code_knows_the_newest_migration(sqlite_url):
    """SCHEMA_HEAD spares alembic imports at start-up; it must follow new migrations."""
    database = Database(sqlite_url)
    try:
        assert head_revision(database) == SCHEMA_HEAD
    finally:
        database.dispose()
