"""`submit - < prompts.jsonl.gz`: compressed stdin is read as JSONL, not refused line by line."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.conftest import chat_lines, run_cli

pytestmark = pytest.mark.slow


def test_gzip_on_stdin_is_submitted(tmp_path, write_config):
    config = write_config([("chat", {"model": "mock/echo"})],
                          settings={"database_url": f"sqlite:///{tmp_path / 'gz.db'}"})
    payload = gzip.compress("".join(json.dumps(line) + "\n" for line in chat_lines(5)).encode())
    result = run_cli("-c", str(config), "submit", "-", input=payload)
    assert result.returncode == 0, result.stderr.decode()
    batch_id = result.stdout.decode().strip()
    status = json.loads(run_cli("-c", str(config), "status", batch_id, "--json").stdout)
    assert status["request_counts"]["total"] == 5 and status["request_counts"]["failed"] == 0
