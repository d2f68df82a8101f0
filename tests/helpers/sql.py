"""Read a test database directly, with a connection of its own (not the code under test's)."""

from __future__ import annotations

import sqlalchemy as sa

from dispatcher.store.calls import calls_sql


def query(database_url: str, sql: str, **params) -> list:
    """The rows of one SQL statement, on a short-lived engine."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql), params).all()
    finally:
        engine.dispose()


# Every provider call on record (store/calls.py: attempts rows and the calls job rows hold), as
# a derived table to select from in place of ``attempts``: "SELECT ... FROM " + CALLS + " AS a".
CALLS = calls_sql()
