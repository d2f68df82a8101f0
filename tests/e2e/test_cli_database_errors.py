"""A database error that reaches the CLI prints a short message, never the SQL's parameters.

Issue 11: SQLAlchemy's text carries the statement and its parameters (names, request bodies);
the CLI must say what failed and what to do, with exit 2 (bad input), 3 (unreachable) or 1.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import chat_lines, run_cli, write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_config(tmp_path, write_config, postgres_url):
    return write_config([("chat", {"model": "mock/echo"})], settings={"database_url": postgres_url})


def alter(url: str, statement: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(statement)
    engine.dispose()


def assert_no_sql_text(stderr: bytes, *secrets: str) -> None:
    for text in (b"Traceback", b"[SQL", b"[parameters", b"DETAIL", *(s.encode() for s in secrets)):
        assert text not in stderr, stderr.decode()


def test_value_refused_by_the_database_is_exit_2_without_the_value(tmp_path, pg_config, postgres_url):
    # A rule of the site's DBA that our validation does not know about.
    alter(postgres_url, "ALTER TABLE batches ADD CONSTRAINT site_name_rule CHECK (position('secret' in name) = 0)")
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(2, model="chat"))
    result = run_cli("-c", str(pg_config), "submit", str(source), "--name", "top-secret-project-x")
    assert result.returncode == 2, result.stderr.decode()
    message = result.stderr.decode()
    assert message.startswith("error: the database refused a value: ")
    assert 'violates check constraint "site_name_rule"' in message
    assert_no_sql_text(result.stderr, "top-secret-project-x")


def test_schema_that_does_not_match_says_to_upgrade_without_the_statement(tmp_path, pg_config, postgres_url):
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(2, model="chat"))
    batch_id = run_cli("-c", str(pg_config), "submit", str(source)).stdout.decode().strip()
    assert batch_id.startswith("batch_")
    alter(postgres_url, "ALTER TABLE batches DROP COLUMN max_cost")
    result = run_cli("-c", str(pg_config), "status", batch_id)
    assert result.returncode == 1, result.stderr.decode()
    assert "does not match this version" in result.stderr.decode()
    assert "run: llm-dispatch db upgrade" in result.stderr.decode()
    assert_no_sql_text(result.stderr, batch_id)
