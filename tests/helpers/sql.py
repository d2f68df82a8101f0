"""Read a test database directly, with a connection of its own (not the code under test's)."""

from __future__ import annotations

import sqlalchemy as sa


def query(database_url: str, sql: str, **params) -> list:
    """The rows of one SQL statement, on a short-lived engine."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql), params).all()
    finally:
        engine.dispose()
