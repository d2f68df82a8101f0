"""Apply and check schema migrations (alembic) from inside the dispatcher."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

import migrations
from dispatcher.errors import UsageError
from dispatcher.store.database import Database

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
# The schema revision this code works with; a test checks it is the migrations' head. Knowing
# it here keeps alembic (a tenth of a second of imports) out of every command's start-up.
SCHEMA_HEAD = "0003"


def alembic_config(database: Database):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return config


def head_revision(database: Database) -> str | None:
    """The newest revision in migrations/ (read by alembic)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()


def current_revision(database: Database) -> str | None:
    """The revision the database is at, None when it has no schema yet."""
    with database.read() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` in one transaction."""
    from alembic import command

    config = alembic_config(database)
    with database.write() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def ensure_schema(database: Database) -> None:
    """Migrate a new SQLite file automatically; otherwise insist the schema is current."""
    if database.sqlite_file_is_new():
        upgrade(database)
        return
    database.check()
    current = current_revision(database)
    head = SCHEMA_HEAD
    if current == head:
        return
    if database.is_sqlite and current is not None:
        upgrade(database)  # a local file we own: keep it current without asking
        return
    if database.is_sqlite and current is None and _is_empty(database):
        upgrade(database)
        return
    state = "has no dispatcher tables" if current is None else f"is at revision {current}, not {head}"
    raise UsageError(
        f"the database at {database.display_url} {state}; run: llm-dispatch db upgrade"
    )


def _is_empty(database: Database) -> bool:
    with database.read() as connection:
        return not sa.inspect(connection).get_table_names()
