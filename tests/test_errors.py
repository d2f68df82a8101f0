"""`user_error_for`: real database and Redis failures become short messages with exit codes."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa

from dispatcher.errors import (
    ConfigError,
    DispatcherError,
    ServiceUnavailableError,
    UsageError,
    user_error_for,
)


def raised(action) -> BaseException:
    with pytest.raises(Exception) as caught:
        action()
    return caught.value


def test_value_too_long_is_bad_input_and_the_value_is_not_repeated(postgres_url):
    engine = sa.create_engine(postgres_url)
    value = "x" * 150 + "SECRET-VALUE"
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (name varchar(10))")
            error = raised(lambda: connection.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": value}))
    finally:
        engine.dispose()
    assert "SECRET-VALUE" in str(error)  # SQLAlchemy's own text shows the parameter
    explained = user_error_for(error)
    assert type(explained) is UsageError and explained.exit_code == 2
    assert "value too long for type character varying(10)" in str(explained)
    assert "SECRET-VALUE" not in str(explained) and "[SQL" not in str(explained)


def test_unreachable_database_is_exit_3():
    engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    error = raised(lambda: engine.connect())
    explained = user_error_for(error)
    assert isinstance(explained, ServiceUnavailableError) and explained.exit_code == 3
    assert str(explained).startswith("cannot reach the database: ")


def test_unparseable_database_url_is_a_config_error():
    explained = user_error_for(raised(lambda: sa.create_engine("notaurl")))
    assert isinstance(explained, ConfigError) and explained.exit_code == 2
    assert str(explained).startswith("database_url: ")


def test_unreachable_redis_is_exit_3():
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    explained = user_error_for(raised(client.ping))
    assert isinstance(explained, ServiceUnavailableError) and explained.exit_code == 3


def test_an_error_raised_while_handling_a_database_error_is_explained_by_it(sqlite_url):
    engine = sa.create_engine(sqlite_url)

    def fail():
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT * FROM missing WHERE a = :a"), {"a": "SECRET"})
        except sa.exc.SQLAlchemyError:
            raise RuntimeError("cleanup failed too")

    explained = user_error_for(raised(fail))
    engine.dispose()
    assert type(explained) is DispatcherError and explained.exit_code == 1
    assert "no such table: missing" in str(explained) and "SECRET" not in str(explained)


def test_other_errors_are_left_alone():
    assert user_error_for(ValueError("a bug")) is None


def test_our_database_engines_hide_parameters_from_every_error_text(sqlite_url):
    """Worker logs print tracebacks too: SQLAlchemy's text must never hold the values."""
    from dispatcher.store.database import Database

    database = Database(sqlite_url)
    try:
        def fail():
            with database.write() as connection:
                connection.execute(sa.text("SELECT * FROM missing WHERE a = :a"), {"a": "SECRET"})

        error = raised(fail)
    finally:
        database.dispose()
    assert "SECRET" not in str(error) and "parameters hidden" in str(error)


# -- the infrastructure tree: failures mapped at their edge, "transient?" asked once -----------


def test_database_edge_maps_an_unreachable_server_to_database_unavailable():
    from dispatcher.errors import DatabaseUnavailable, is_transient
    from dispatcher.store.database import Database

    database = Database("postgresql://postgres:PASSWORD@127.0.0.1:1/none")
    try:
        error = raised(lambda: database.write().__enter__())
    finally:
        database.dispose()
    assert isinstance(error, DatabaseUnavailable) and error.exit_code == 3
    assert is_transient(error)
    assert str(error).startswith("cannot reach the database at postgresql+psycopg://postgres:***@")
    assert "PASSWORD" not in str(error)
    assert isinstance(error.__cause__, sa.exc.OperationalError)  # the driver's error stays reachable


def test_database_edge_maps_a_locked_sqlite_file_to_database_busy(sqlite_url, tmp_path, monkeypatch):
    import sqlite3

    from dispatcher.errors import DatabaseBusy, is_transient
    from dispatcher.store import database as database_module

    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_MS", 50)  # give up on the lock fast
    database = database_module.Database(sqlite_url)
    database.check()
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        def write():
            with database.write() as connection:
                connection.exec_driver_sql("SELECT 1")

        error = raised(write)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        database.dispose()
    assert isinstance(error, DatabaseBusy) and is_transient(error)
    assert "database is locked" in str(error)


def test_database_edge_leaves_errors_about_the_statement_as_the_driver_raised_them(sqlite_url):
    """Callers catch these by class (submit tells a taken idempotency key by IntegrityError)."""
    from dispatcher.errors import is_transient
    from dispatcher.store.database import Database

    database = Database(sqlite_url)
    try:
        with database.write() as connection:
            connection.exec_driver_sql("CREATE TABLE t (k TEXT UNIQUE)")
            connection.exec_driver_sql("INSERT INTO t VALUES ('a')")

        def insert_again():
            with database.write() as connection:
                connection.exec_driver_sql("INSERT INTO t VALUES ('a')")

        def read_missing():
            with database.read() as connection:
                connection.exec_driver_sql("SELECT * FROM missing")

        duplicate, missing = raised(insert_again), raised(read_missing)
    finally:
        database.dispose()
    assert isinstance(duplicate, sa.exc.IntegrityError) and not is_transient(duplicate)
    assert isinstance(missing, sa.exc.OperationalError) and not is_transient(missing)


def test_redis_edge_maps_every_shared_client_call_to_redis_unavailable():
    """Limits, routing numbers and the cache share one client: scripts, commands and pipelines."""
    import asyncio

    from dispatcher.cache import RedisResponseCache
    from dispatcher.errors import RedisUnavailable, is_transient
    from dispatcher.limits.redis_backend import RedisLimitBackend
    from dispatcher.limits.spec import LimitSpec

    async def calls():
        backend = RedisLimitBackend("redis://:PASSWORD@127.0.0.1:1/0?socket_connect_timeout=1", "ns")
        cache = RedisResponseCache(backend.client, "ns")
        errors = []
        for call in (
            lambda: backend.reserve([LimitSpec("k", 60, None, 1.0, 0.0)], 1, 10, 0.5),
            lambda: backend.cooldowns(["d1"]),
            lambda: backend.client.pipeline(transaction=False).hgetall("routing").execute(),
            lambda: cache.get("key"),
        ):
            try:
                await call()
            except Exception as exc:  # noqa: BLE001 - collected and checked below
                errors.append(exc)
        await backend.aclose()
        return errors

    errors = asyncio.run(calls())
    assert len(errors) == 4
    for error in errors:
        assert isinstance(error, RedisUnavailable) and error.exit_code == 3 and is_transient(error)
        assert str(error).startswith("cannot reach Redis at redis://") and "PASSWORD" not in str(error)
        assert isinstance(error.__cause__, redis.ConnectionError)


def test_only_our_transient_classes_are_transient():
    from dispatcher.errors import InfrastructureError, is_transient

    assert not is_transient(redis.ConnectionError("connection refused"))  # unmapped: not asked
    assert not is_transient(OSError("connection refused"))
    assert not is_transient(InfrastructureError("a failure retrying cannot fix"))
    assert not is_transient(UsageError("bad option"))
