"""A worker SIGKILLed in the middle of a provider batch's upload, its creation, or while it
polls it: the restarted worker finds the upload or the remote batch the dead one made (their
ids never reached SQL) instead of making another, and every line's result arrives once.

The mock answers an upload or a creation only ``*_reply_delay_s`` after doing it: the kill
lands in that window, as a worker killed between the provider's commit and its reply would.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.conftest import chat_lines, openai_deployment, write_jsonl
from tests.e2e.test_faults import results_by_id, submit, wait_done, worker_pids
from tests.e2e.workers import WorkerFleet
from tests.helpers.sql import query

pytestmark = pytest.mark.slow
LINES = 200
MOCK_ANTHROPIC_KEY = "sk-ant-kill-test"


def deployment(provider, kind: str) -> dict:
    if kind == "anthropic":
        return {"model": "anthropic/claude-haiku-4-5", "api_base": provider.root_url, "api_key": MOCK_ANTHROPIC_KEY}
    return openai_deployment(provider)


def part_state(database_url: str) -> tuple | None:
    rows = query(database_url, "SELECT state, polls FROM provider_batches")
    return tuple(rows[0]) if rows else None


@pytest.mark.parametrize(("kind", "step"), [
    ("openai", "upload"), ("openai", "create"), ("openai", "poll"), ("anthropic", "create"), ("anthropic", "poll"),
])
def test_a_worker_killed_at_a_step_neither_repeats_it_nor_loses_the_batch(
    kind, step, tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config,
):
    delays = {"upload": {"upload_reply_delay_s": 60}, "create": {"create_reply_delay_s": 60}, "poll": {}}[step]
    provider = start_mock_provider(batch_delay_s=2 if step == "poll" else 0.5, api_key=None if kind == "openai"
                                   else MOCK_ANTHROPIC_KEY, **delays)
    config = write_config(
        [("chat", deployment(provider, kind))],
        settings={"database_url": postgres_url, "redis_url": redis_server, "namespace": redis_namespace,
                  "provider_batches": {"check_interval": 0.2, "first_poll": 0.3, "max_poll_interval": 0.5}},
    )
    lines = chat_lines(LINES, model="chat")
    path = write_jsonl(tmp_path / "in.jsonl", [{**line, "max_tokens": 16} for line in lines])
    batch_id = submit(config, path, "--via", "provider-batch")

    def in_flight() -> bool:
        batches = provider.stats()["batches"][kind]
        if step == "upload":
            return batches["files_uploaded"] == 1
        if step == "create":
            return batches["batches_created"] == 1
        state = part_state(postgres_url)
        return state is not None and state[0] == "submitted" and state[1] >= 1

    with WorkerFleet(config, processes=1) as fleet:
        deadline = time.monotonic() + 60
        while not in_flight():
            assert time.monotonic() < deadline, fleet.log()[-3000:]
            time.sleep(0.05)
        [pid] = worker_pids(config)
        os.kill(pid, signal.SIGKILL)
        status = wait_done(config, batch_id, timeout=90)
        log = fleet.log()
    assert log.count("exited with code -9") == 1
    assert status["status"] == "completed", status
    assert status["request_counts"] == {"total": LINES, "completed": LINES, "failed": 0}
    results = results_by_id(config, batch_id, tmp_path)
    assert sorted(results) == sorted(line["custom_id"] for line in lines)
    for line in lines:
        body = results[line["custom_id"]]["response"]["body"]
        assert body["choices"][0]["message"]["content"] == f"Mock reply to: {line['messages'][0]['content']}"
    batches = provider.stats()["batches"][kind]
    assert batches["batches_created"] == 1 and batches["duplicate_lines"] == 0
    if kind == "openai":
        assert batches["files_uploaded"] == 1
    by_route = provider.stats()["by_route"]
    assert sum(by_route.get(name, {}).get("requests", 0) for name in ("openai.chat", "anthropic.messages")) == 0
    [part] = status["provider_batches"]
    assert part["state"] == "imported" and part["lines"] == LINES
    if step != "poll":
        assert "adopted" in log  # the restarted worker found what the killed one made
