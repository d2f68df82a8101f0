"""Lines PostgreSQL (or the JSON writer) cannot store are refused at validation, by line and
field, so a submission never fails half-way through storing (issue 11, bad input)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import chat_lines, run_cli, write_jsonl

pytestmark = pytest.mark.slow

# More good lines than one insert chunk (2,000): the bad lines come after a chunk that used to
# be stored, and run, before the insert of theirs failed.
GOOD_BEFORE = 2_100


@pytest.fixture
def postgres_config(postgres_url, write_config):
    return write_config([("chat", {"model": "mock/echo"})], settings={"database_url": postgres_url})


def unstorable_lines() -> list[str]:
    nested = "[" * 300 + "]" * 300  # parsed by orjson (limit 1,024), not writable (255)
    message = '[{"role": "user", "content": "hi"}]'
    return [
        f'{{"custom_id": "deep", "model": "chat", "messages": {message}, "metadata": {nested}}}',
        f'{{"custom_id": "nul\\u0000id", "model": "chat", "messages": {message}}}',
        '{"custom_id": "nul-body", "model": "chat", "messages": [{"role": "user", "content": "a\\u0000b"}]}',
        '{"custom_id": "raw-nul", "model": "chat", "messages": "\x00"}',  # not JSON at all
    ]


def bad_input(tmp_path):
    good = chat_lines(GOOD_BEFORE + 1, model="chat")
    return write_jsonl(tmp_path / "in.jsonl", [*good[:GOOD_BEFORE], *unstorable_lines(), good[-1]])


def listed(config) -> list:
    result = run_cli("-c", str(config), "list", "--json")
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def test_unstorable_lines_refuse_the_submission_by_line_and_field(tmp_path, postgres_config):
    result = run_cli("-c", str(postgres_config), "submit", str(bad_input(tmp_path)))
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    first_bad = GOOD_BEFORE + 1
    assert f"line {first_bad}: JSON nested deeper than 128 levels (at body.metadata[0][0][0]...)" in stderr
    assert f"line {first_bad + 1}: custom_id contains a NUL character" in stderr
    assert f"line {first_bad + 2}: body.messages[0].content contains a NUL character" in stderr
    assert f"line {first_bad + 3}: not valid JSON" in stderr
    assert "Traceback" not in stderr and result.stdout == b""
    assert listed(postgres_config) == []


def test_skip_invalid_records_them_failed_and_stores_the_rest(tmp_path, postgres_config):
    result = run_cli("-c", str(postgres_config), "submit", str(bad_input(tmp_path)), "--skip-invalid")
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    batch_id = result.stdout.decode().strip()
    status = json.loads(run_cli("-c", str(postgres_config), "status", batch_id, "--json").stdout)
    assert status["status"] == "in_progress"  # stored whole; no worker runs here
    assert status["request_counts"]["total"] == GOOD_BEFORE + 5
    assert status["request_counts"]["failed"] == 4

    errors_path = tmp_path / "errors.jsonl"
    exported = run_cli("-c", str(postgres_config), "results", batch_id, "-o", str(tmp_path / "out.jsonl"),
                       "--errors", str(errors_path))
    assert exported.returncode == 0, exported.stderr.decode()
    errors = [json.loads(line) for line in errors_path.read_text().splitlines()]
    first_bad = GOOD_BEFORE + 1
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [
        ("deep", "invalid_request"),
        (f"line-{first_bad + 1}", "invalid_custom_id"),  # its own id cannot be stored
        ("nul-body", "invalid_request"),
        (f"line-{first_bad + 3}", "invalid_json"),
    ]
    assert errors[1]["error"]["message"].startswith(f"line {first_bad + 1}: custom_id contains a NUL")
