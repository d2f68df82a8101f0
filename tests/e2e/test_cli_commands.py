"""Commands that only parse options and call the client: complete, db upgrade, models, worker."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def local_config(tmp_path, write_config):
    """Embedded mode: SQLite, the in-process mock provider, no Redis."""
    return write_config([("chat", {"model": "mock/echo", "rpm": 600})],
                        settings={"database_url": f"sqlite:///{tmp_path / 'c.db'}"})


def complete(config, *args: str, stdin: bytes | None = None):
    return run_cli("-c", str(config), "complete", "--model", "chat", *args, input=stdin)


def test_complete_reads_a_prompt_or_a_json_body_from_stdin_and_applies_the_options(local_config):
    text = complete(local_config, "-", stdin=b"hello there\n")
    assert text.returncode == 0, text.stderr.decode()
    assert text.stdout.decode() == "Mock reply to: hello there\n"  # stdin's newline not sent

    body = b'{"messages": [{"role": "user", "content": "from a body"}]}'
    as_body = complete(local_config, "-", "--system", "Be brief.", "--max-tokens", "2", "--json", stdin=body)
    assert as_body.returncode == 0, as_body.stderr.decode()
    answer = json.loads(as_body.stdout)
    assert answer["choices"][0]["message"]["content"] == "Mock reply to: from a body"
    assert answer["choices"][0]["finish_reason"] == "length"  # --max-tokens 2 reached the body
    plain = json.loads(complete(local_config, "from a body", "--json").stdout)
    assert answer["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"]  # the system message


@pytest.mark.parametrize("stdin, message", [
    (b"  \n", "error: the prompt is empty"),
    (b'{"messages": ', "error: stdin looks like JSON but is not valid"),
])
def test_complete_refuses_an_empty_prompt_and_broken_json(local_config, stdin, message):
    result = complete(local_config, "-", stdin=stdin)
    assert result.returncode == 2
    assert result.stderr.decode().startswith(message)


def test_db_upgrade_creates_then_finds_the_schema_current(tmp_path, write_config):
    config = write_config([("chat", {"model": "mock/echo"})],
                          settings={"database_url": f"sqlite:///{tmp_path / 'fresh.db'}"})
    first = run_cli("-c", str(config), "db", "upgrade")
    assert first.returncode == 0, first.stderr.decode()
    assert "schema upgraded from empty to " in first.stderr.decode()
    again = run_cli("-c", str(config), "db", "upgrade")
    assert again.returncode == 0 and "schema already at revision" in again.stderr.decode()


def test_models_shows_each_deployment_as_a_table_and_as_json(local_config):
    table = run_cli("-c", str(local_config), "models")
    assert table.returncode == 0, table.stderr.decode()
    header, row = ([cell.strip() for cell in line.split(chr(0x2503) if n == 0 else chr(0x2502))]
                   for n, line in enumerate(table.stdout.decode().splitlines()[:3:2]))
    assert header[:4] == ["group", "deployment", "model", "rpm"]
    assert row[:4] == ["chat", "chat#0", "mock/echo", "600"] and row[-1] == "(in-process)"
    rows = json.loads(run_cli("-c", str(local_config), "models", "--json").stdout)
    assert [(r["group"], r["rpm"]) for r in rows] == [("chat", 600)]


def test_worker_refuses_an_unknown_group_before_starting(local_config):
    result = run_cli("-c", str(local_config), "worker", "--groups", "chat,nope")
    assert result.returncode == 2
    assert "--groups: unknown model group(s) nope" in result.stderr.decode()
