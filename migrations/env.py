"""Alembic environment: runs against the connection the dispatcher hands in, or a URL.

``llm-dispatch db upgrade`` passes its own connection (``config.attributes["connection"]``).
Running ``alembic upgrade head`` by hand reads ``$LLM_DISPATCH_DATABASE_URL`` instead.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from dispatcher.store.database import normalize_url
from dispatcher.store.tables import metadata

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("LLM_DISPATCH_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set LLM_DISPATCH_DATABASE_URL to the database to migrate")
    engine = sa.create_engine(normalize_url(url))
    with engine.begin() as connection:
        _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported")
run_migrations_online()
