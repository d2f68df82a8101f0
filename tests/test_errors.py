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
