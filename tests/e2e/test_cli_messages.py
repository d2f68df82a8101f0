"""What the CLI tells people: each message names the right thing and says what to do (issue 10)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import chat_lines, cli_env, run_cli, write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture
def local_config(tmp_path, write_config):
    """Embedded mode: SQLite, the in-process mock provider, no Redis."""
    return write_config([("chat", {"model": "mock/echo"})],
                        settings={"database_url": f"sqlite:///{tmp_path / 'm.db'}"})


@pytest.fixture
def redis_config(tmp_path, write_config, redis_server, redis_namespace):
    """Distributed mode with no worker running: submitted batches wait."""
    return write_config([("chat", {"model": "mock/echo"})],
                        settings={"database_url": f"sqlite:///{tmp_path / 'd.db'}",
                                  "redis_url": redis_server, "namespace": redis_namespace})


def submit(config, tmp_path, *options: str, lines=None) -> str:
    source = write_jsonl(tmp_path / "in.jsonl", lines or chat_lines(3, model="chat"))
    result = run_cli("-c", str(config), "submit", str(source), *options)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def test_reprioritize_names_the_priority_argument(tmp_path, local_config):
    batch_id = submit(local_config, tmp_path)
    result = run_cli("-c", str(local_config), "reprioritize", batch_id, "12")
    assert result.returncode == 2
    assert result.stderr.decode().startswith("error: PRIORITY: ")
    assert b"--priority" not in result.stderr


def test_list_refuses_an_unknown_status_and_lists_the_valid_ones(tmp_path, local_config):
    result = run_cli("-c", str(local_config), "list", "--status", "bogus")
    assert result.returncode == 2
    message = result.stderr.decode()
    assert "unknown batch status 'bogus'" in message and "no batches" not in message
    for status in ("validating", "in_progress", "completed", "cancelled", "budget_exceeded"):
        assert status in message
    empty = run_cli("-c", str(local_config), "list", "--status", "expired")
    assert empty.returncode == 0 and b"no batches with status expired" in empty.stderr


def test_retry_of_a_cancelled_batch_says_what_can_be_done(tmp_path, local_config):
    batch_id = submit(local_config, tmp_path)
    assert run_cli("-c", str(local_config), "cancel", batch_id).returncode == 0
    result = run_cli("-c", str(local_config), "retry", batch_id, "--failed")
    assert result.returncode == 2
    message = result.stderr.decode()
    assert "only finished or running batches" not in message
    assert f"batch {batch_id} is cancelled: a cancelled batch is not run again" in message
    assert f"llm-dispatch results {batch_id} --errors failed.jsonl" in message


def test_run_failures_point_at_the_users_errors_file_and_embedded_retry_says_how_to_process(
    tmp_path, local_config
):
    lines = chat_lines(3, model="chat")
    lines[1]["messages"][0]["content"] += " [[mock:status=400]]"  # fails, no retries
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    ran = run_cli("-c", str(local_config), "run", str(source), "-o", "out.jsonl", "--errors", "e.jsonl",
                  cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr.decode()
    assert b"1 of 3 requests did not succeed (they are in e.jsonl)" in ran.stderr
    assert b"errors.jsonl" not in ran.stderr
    batch_id = json.loads(run_cli("-c", str(local_config), "list", "--json").stdout)[0]["id"]

    retried = run_cli("-c", str(local_config), "retry", batch_id, "--failed")
    assert retried.returncode == 0, retried.stderr.decode()
    assert b"1 failed requests queued again" in retried.stderr
    assert f"run `llm-dispatch --config {local_config} watch {batch_id}`".encode() in retried.stderr


def test_status_and_list_show_a_held_batch_and_when_it_starts(tmp_path, local_config):
    batch_id = submit(local_config, tmp_path, "--delay", "10m")
    shown = run_cli("-c", str(local_config), "status", batch_id)
    assert shown.returncode == 0, shown.stderr.decode()
    assert re.search(r"status +in_progress \(held until .+, starts in (9m5\ds|10m00s)\)", shown.stdout.decode())
    as_json = json.loads(run_cli("-c", str(local_config), "status", batch_id, "--json").stdout)
    assert as_json["status"] == "in_progress"  # OpenAI's status stays as it is
    assert 590 < as_json["held_until"] - time.time() <= 600
    listed = run_cli("-c", str(local_config), "list").stdout.decode()
    assert "in_progress (held)" in listed

    unheld = submit(local_config, tmp_path)
    assert json.loads(run_cli("-c", str(local_config), "status", unheld, "--json").stdout)["held_until"] is None


def test_watch_drops_the_no_live_workers_note_once_the_batch_has_ended(tmp_path, redis_config):
    batch_id = submit(redis_config, tmp_path)
    watch = subprocess.Popen([sys.executable, "-m", "cli", "-c", str(redis_config), "watch", batch_id],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    try:
        first = watch.stderr.readline().decode()  # the first progress line comes at once
        assert "no live workers" in first, first
        assert run_cli("-c", str(redis_config), "cancel", batch_id).returncode == 0
        _, rest = watch.communicate(timeout=30)
    finally:
        watch.kill()
    final = [line for line in rest.decode().splitlines() if line.startswith(f"{batch_id} cancelled")]
    assert final, rest.decode()
    assert "no live workers" not in final[-1]
