"""Apply and check schema migrations (alembic) from inside the dispatcher."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import sqlalchemy as sa

import migrations
from dispatcher.errors import ServiceUnavailableError, UsageError
from dispatcher.store.database import Database

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
# The schema revision this code works with; a test checks it is the migrations' head. Knowing
# it here keeps alembic (a tenth of a second of imports) out of every command's start-up.
SCHEMA_HEAD = "0011"


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


# What a PostgreSQL server says while it is starting, restarting or not listening on TCP yet
# (the official image initialises behind a socket-only server): worth waiting for. A wrong
# password, user or database name is not, nor is a host name that does not resolve.
_NOT_READY_YET = (
    "connection refused",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "server closed the connection unexpectedly",
)
_FIRST_RETRY_S = 0.25
_LONGEST_RETRY_S = 2.0


def wait_for_database(database: Database, wait_s: float, notify: Callable[[str], None]) -> None:
    """Return once the database accepts connections; wait up to ``wait_s`` seconds for a
    server that is still starting (``db upgrade`` next to a fresh PostgreSQL container).

    Raises the last ServiceUnavailableError when the time is up, or at once when the error
    is not one that time can fix.
    """
    deadline = time.monotonic() + wait_s
    delay = _FIRST_RETRY_S
    waited = False
    while True:
        try:
            database.check()
            return
        except ServiceUnavailableError as exc:
            remaining = deadline - time.monotonic()
            if database.is_sqlite or not _not_ready_yet(exc) or remaining <= 0:
                if waited:
                    raise ServiceUnavailableError(f"{exc} (still refused after waiting {wait_s:g} s)") from exc
                raise
            if not waited:
                notify(f"{exc}; waiting up to {wait_s:g} s for it to accept connections (--wait)")
                waited = True
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _LONGEST_RETRY_S)


def _not_ready_yet(exc: ServiceUnavailableError) -> bool:
    text = str(exc).lower()
    return any(hint in text for hint in _NOT_READY_YET)


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
