"""Connections to the database: SQLite (the default) or PostgreSQL.

SQLite runs in WAL mode with writes in ``BEGIN IMMEDIATE`` transactions, so several
processes can share one file: writers queue on the lock (busy timeout) instead of failing
when a read transaction tries to upgrade. Readers use a second engine with plain deferred
transactions so that ``watch`` never blocks a worker's writes.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from dispatcher.config.secrets import redact_url
from dispatcher.errors import (
    DatabaseBusy,
    DatabaseUnavailable,
    InfrastructureError,
    ServiceUnavailableError,
    short_reason,
)

SQLITE_BUSY_TIMEOUT_MS = 60_000


def normalize_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# A host whose link is cut mid-transaction leaves its session open on the server, holding row
# locks the takeover of its jobs waits for: the server ends such a session after this long
# idle in a transaction (ours last milliseconds) and probes silent peers with keepalives.
IDLE_IN_TRANSACTION_OPTION = "-c idle_in_transaction_session_timeout=10000"
POSTGRES_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def _postgres_session_args(url) -> dict:
    """connect_args adding our session options to any the URL gives (a search_path, say);
    a timeout the URL sets itself is kept."""
    given = url.query.get("options")
    given = " ".join(given) if isinstance(given, tuple) else given
    if given and "idle_in_transaction_session_timeout" in given:
        options = given
    else:
        options = f"{given} {IDLE_IN_TRANSACTION_OPTION}" if given else IDLE_IN_TRANSACTION_OPTION
    return {"options": options, **POSTGRES_KEEPALIVES}


class Database:
    """A writer and a reader engine over one database URL."""

    def __init__(self, url: str, *, pool_size: int = 5):
        self.url = normalize_url(url)
        self.display_url = redact_url(self.url) or ""
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        if self.is_sqlite:
            self.sqlite_path = parsed.database or ""
            self.writer = self._sqlite_engine(immediate=True)
            self.reader = self._sqlite_engine(immediate=False)
        elif self.dialect == "postgresql":
            self.sqlite_path = None
            self.writer = sa.create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                pool_recycle=1800,
                hide_parameters=True,  # errors and logs never show request bodies or names
                connect_args=_postgres_session_args(parsed),
            )
            self.reader = self.writer
        else:
            raise ServiceUnavailableError(
                f"unsupported database URL {self.display_url}: use sqlite:///path.db "
                "or postgresql+psycopg://user@host/db"
            )

    def _sqlite_engine(self, *, immediate: bool) -> Engine:
        engine = sa.create_engine(
            self.url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            hide_parameters=True,  # errors and logs never show request bodies or names
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            # Let SQLAlchemy's "begin" event decide how transactions start.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that may write; commits on success, rolls back on error."""
        with self._translate_errors(), self.writer.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (never blocks writers on SQLite)."""
        with self._translate_errors(), self.reader.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """The database's edge: failures of the server (unreachable, busy) leave as our errors."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            mapped = database_failure(exc, self.display_url)
            if mapped is None:
                raise
            raise mapped from exc

    def check(self) -> None:
        """Raise ServiceUnavailableError naming the URL when the database cannot be reached."""
        if self.is_sqlite and self.sqlite_path and self.sqlite_path != ":memory:":
            parent = Path(self.sqlite_path).expanduser().resolve().parent
            if not parent.is_dir():
                raise ServiceUnavailableError(
                    f"cannot open the database at {self.display_url}: folder {parent} does not exist"
                )
        with self.read() as connection:
            connection.exec_driver_sql("SELECT 1")

    def sqlite_file_is_new(self) -> bool:
        if not self.is_sqlite or not self.sqlite_path or self.sqlite_path == ":memory:":
            return False
        path = Path(self.sqlite_path).expanduser()
        return not path.exists() or path.stat().st_size == 0

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def _is_connection_error(exc: BaseException) -> bool:
    """True for errors that mean the server is unreachable (worth waiting and retrying)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    text = str(getattr(exc, "orig", exc)).lower()
    hints = (
        "connection refused",
        "could not connect",
        "connection failed",
        "server closed the connection",
        "terminating connection",
        "connection timed out",
        "unable to open database file",
        "no route to host",
        "network is unreachable",
        "the database system is starting up",
        "the database system is shutting down",
        "connection is closed",
        "consuming input failed",
    )
    return any(hint in text for hint in hints)


def _is_contention_error(exc: BaseException) -> bool:
    """True when the transaction lost to another one (SQLite busy/locked, a deadlock, a
    serialization failure): running the whole transaction again can succeed."""
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "deadlock detected" in text or "could not serialize" in text


def database_failure(exc: BaseException, url: str | None = None) -> InfrastructureError | None:
    """The error of our tree for a failure of the database server, or None when the error is
    about the statement itself (a refused value, a missing table)."""
    reason = short_reason(getattr(exc, "orig", None) or exc)
    if _is_connection_error(exc):
        where = f" at {url}" if url else ""
        return DatabaseUnavailable(f"cannot reach the database{where}: {reason}")
    if _is_contention_error(exc):
        return DatabaseBusy(f"the database is busy ({reason}); try again")
    return None


def now() -> float:
    return time.time()


def database_now(connection: Connection) -> sa.ColumnElement:
    """The database server's clock in Unix seconds, as an SQL expression.

    Heartbeats are written and judged on this one clock, so a worker whose own clock is off
    is neither declared dead nor declares others dead. (SQLite has no server: every process
    reads the same machine's clock.)
    """
    if connection.dialect.name == "postgresql":
        return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Float)
    return (sa.func.julianday("now") - 2440587.5) * 86400.0


def default_sqlite_path_hint(url: str) -> str:
    return os.path.abspath(make_url(normalize_url(url)).database or "")
