"""Cooldowns: the only deployment of a group is not cooled down for being flaky (issue 11, 9).

A provider failing 30% of calls took 272 s for 1,000 jobs (about 10 s of work) because each
burst of failures cooled the group's only deployment down, holding every job back. As LiteLLM
does, a single-deployment group relies on retries and their backoff unless the deployment
looks down (no call succeeding); a deployment that has siblings still cools down.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import chat_lines, openai_deployment, run_cli, write_jsonl

pytestmark = pytest.mark.slow

COOLDOWN_S = 10.0  # long, so that a single cooldown would show in the wall time


def cooldown_lines(stderr: bytes) -> list[str]:
    return re.findall(r"deployment (\S+) failed more than \d+ times in a minute: cooling down", stderr.decode())


def flaky_lines(count: int, healthy_first: int) -> list[dict]:
    """Request lines of which 30% (after the first ``healthy_first``) fail their first try."""
    lines = chat_lines(count, model="chat")
    for i, line in enumerate(lines):
        if i >= healthy_first and i % 10 < 3:
            line["messages"][0]["content"] += " [[mock:fail_first=1]]"
    return lines


def test_a_flaky_only_deployment_is_retried_not_cooled_down(tmp_path, start_mock_provider, write_config):
    provider = start_mock_provider(latency_ms=20)
    concurrency = 8
    config = write_config(
        [("chat", openai_deployment(provider))],
        router={"num_retries": 2, "cooldown_time": COOLDOWN_S},  # allowed_fails: the default, 3
        settings={"database_url": f"sqlite:///{tmp_path / 'f.db'}", "worker": {"concurrency": concurrency}},
    )
    # The first claim's calls succeed, so the deployment is known to answer when failures come.
    lines = flaky_lines(150, healthy_first=concurrency)
    failing = sum("fail_first" in line["messages"][0]["content"] for line in lines)
    started = time.monotonic()
    result = run_cli("-c", str(config), "run", str(write_jsonl(tmp_path / "in.jsonl", lines)),
                     "-o", str(tmp_path / "out.jsonl"), timeout=45)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr.decode()
    assert cooldown_lines(result.stderr) == []
    assert provider.stats()["requests"] == len(lines) + failing  # each failure retried once
    # About a second of work; before the fix each burst of failures cost a 10 s cooldown.
    assert elapsed < COOLDOWN_S, f"took {elapsed:.1f}s"


def test_a_failing_deployment_with_a_sibling_still_cools_down(tmp_path, start_mock_provider, write_config):
    failing, healthy = start_mock_provider(error_rate=1.0), start_mock_provider(latency_ms=5)
    config = write_config(
        [("chat", openai_deployment(failing)), ("chat", openai_deployment(healthy))],
        router={"num_retries": 3, "routing_strategy": "simple-shuffle", "cooldown_time": 60},
        settings={"database_url": f"sqlite:///{tmp_path / 's.db'}", "worker": {"concurrency": 4}},
    )
    result = run_cli("-c", str(config), "run", str(write_jsonl(tmp_path / "in.jsonl", chat_lines(60, model="chat"))),
                     "-o", str(tmp_path / "out.jsonl"), timeout=90)
    assert result.returncode == 0, result.stderr.decode()
    assert cooldown_lines(result.stderr) == ["chat#0"]
    assert healthy.stats()["completed"] == 60
    # allowed_fails (3) + 1 failures start the cooldown; calls already under way still land.
    assert failing.stats()["requests"] <= 3 + 1 + 4


def test_an_only_deployment_that_never_answers_still_cools_down(tmp_path, start_mock_provider, write_config):
    dead = start_mock_provider(error_rate=1.0)
    config = write_config(
        [("chat", openai_deployment(dead))],
        router={"num_retries": 1, "cooldown_time": 0.5},
        settings={"database_url": f"sqlite:///{tmp_path / 'd.db'}", "worker": {"concurrency": 4}},
    )
    result = run_cli("-c", str(config), "run", str(write_jsonl(tmp_path / "in.jsonl", chat_lines(12, model="chat"))),
                     "-o", str(tmp_path / "out.jsonl"), timeout=90)
    assert result.returncode == 1  # every job failed, after its retry
    assert "chat#0" in cooldown_lines(result.stderr)  # down, not flaky: LiteLLM cools it too
    assert dead.stats()["requests"] == 12 * 2
