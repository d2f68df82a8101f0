"""``llm-dispatch run`` in embedded mode: SQLite, in-process broker, no Redis."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, chat_lines, cli_env, openai_deployment, run_cli, write_jsonl

pytestmark = pytest.mark.slow


def test_readme_quick_start_needs_no_config_services_or_keys(tmp_path):
    """The README's first command, as written, in an empty folder."""
    result = run_cli("run", str(REPO / "examples" / "prompts.jsonl"), "-o", "results.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    expected = [json.loads(line)["custom_id"] for line in (REPO / "examples" / "prompts.jsonl").read_text().splitlines()]
    assert [r["custom_id"] for r in results] == expected
    assert all(r["response"]["body"]["choices"][0]["message"]["content"] for r in results)
    assert (tmp_path / "llm-dispatch.db").exists()


def test_run_200_jobs_against_http_provider(tmp_path, mock_provider, write_config):
    config = write_config(
        [("chat", openai_deployment(mock_provider))],
        settings={"database_url": f"sqlite:///{tmp_path / 'e.db'}"},
    )
    lines = chat_lines(200, prefix="emb", model="chat")
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    result = run_cli("-c", str(config), "run", str(source), "-o", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr.decode()
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["custom_id"] for r in results] == [line["custom_id"] for line in lines]
    stats = mock_provider.stats()
    assert stats["completed"] == 200 and stats["duplicates"] == 0


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_run_then_watch_resumes_without_loss(tmp_path, start_mock_provider, write_config, stop_signal):
    provider = start_mock_provider(latency_ms=300)
    config = write_config(
        [("chat", openai_deployment(provider))],
        settings={"database_url": f"sqlite:///{tmp_path / 'e.db'}", "worker": {"concurrency": 20}},
    )
    lines = chat_lines(150, prefix="intr", model="chat")
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "-c", str(config), "run", str(source), "-o", str(tmp_path / "out.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
    )
    deadline = time.monotonic() + 30
    while provider.stats()["completed"] < 30:
        assert time.monotonic() < deadline, process.stderr.read().decode() if process.poll() is not None else "slow"
        time.sleep(0.1)
    process.send_signal(stop_signal)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr.decode()
    # The hint can be pasted as it is: it names the config this run was given.
    assert f"Resume with: llm-dispatch --config {config} watch batch_".encode() in stderr
    batch_id = stderr.decode().split("watch ")[-1].split()[0]
    done_before = provider.stats()["completed"]
    assert done_before < 150

    watched = run_cli("-c", str(config), "watch", batch_id)
    assert watched.returncode == 0, watched.stderr.decode()
    exported = run_cli("-c", str(config), "results", batch_id, "-o", str(tmp_path / "out.jsonl"))
    assert exported.returncode == 0
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(r["custom_id"] for r in results) == sorted(line["custom_id"] for line in lines)
    stats = provider.stats()
    # The first Ctrl-C lets calls in flight finish, so nothing is sent twice.
    assert stats["duplicates"] == 0
    assert stats["completed"] == 150


def test_lines_without_a_model_go_to_the_only_group(tmp_path, mock_provider, write_config):
    config = write_config(
        [("chat", openai_deployment(mock_provider))],
        settings={"database_url": f"sqlite:///{tmp_path / 'e.db'}"},
    )
    lines = chat_lines(5, prefix="nomodel")  # no "model" anywhere, no --model
    result = run_cli("-c", str(config), "run", str(write_jsonl(tmp_path / "in.jsonl", lines)),
                     "-o", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr.decode()
    assert b"(chat: 5)" in result.stderr
    assert mock_provider.stats()["completed"] == 5


def test_client_wait_runs_the_batch_in_embedded_mode(tmp_path, monkeypatch):
    """Client().submit + wait needs no worker command: nothing but this process could run it."""
    from dispatcher import Client, CompletionTimeout

    monkeypatch.chdir(tmp_path)
    for name in ("LLM_DISPATCH_CONFIG", "LLM_DISPATCH_REDIS_URL", "LLM_DISPATCH_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with Client() as client:  # built-in default: SQLite file here, mock group, no Redis
        batch = client.submit([{"messages": [{"role": "user", "content": f"hi {i}"}]} for i in range(20)])
        info = client.wait(batch.batch_id, timeout=60)
        assert (info.status, info.succeeded) == ("completed", 20)
        assert client.complete("hello")["choices"][0]["message"]["content"] == "Mock reply to: hello"
    assert issubclass(CompletionTimeout, TimeoutError)
