"""A batch through ``submit`` + worker subprocesses + ``results``, on Redis and both databases."""

from __future__ import annotations

import json

import pytest

from tests.conftest import chat_lines, openai_deployment, run_cli, write_jsonl
from tests.e2e.workers import WorkerFleet
from tests.helpers.batches import wait_until_final

pytestmark = pytest.mark.slow


def wait_for_batch(config, batch_id: str, timeout: float = 90) -> dict:
    """The final ``status --json`` of a batch, once it has ended."""
    wait_until_final(config, batch_id, timeout)
    result = run_cli("-c", str(config), "status", batch_id, "--json")
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def test_200_jobs_through_submit_two_workers_and_results(
    tmp_path, database_url, redis_namespace, redis_server, mock_provider, write_config
):
    config = write_config(
        [("chat", openai_deployment(mock_provider))],
        settings={"database_url": database_url, "redis_url": redis_server, "namespace": redis_namespace},
    )
    lines = chat_lines(200, prefix="dist")
    source = write_jsonl(tmp_path / "in.jsonl", lines)

    submitted = run_cli("-c", str(config), "submit", str(source), "--model", "chat", "--priority", "normal")
    assert submitted.returncode == 0, submitted.stderr.decode()
    batch_id = submitted.stdout.decode().strip()
    assert batch_id.startswith("batch_") and "\n" not in batch_id

    with WorkerFleet(config, processes=2) as fleet:
        status = wait_for_batch(config, batch_id)
        assert fleet.stop() == 0, fleet.log()
    assert status["request_counts"] == {"total": 200, "completed": 200, "failed": 0}
    assert status["usage"]["total_tokens"] > 0

    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    exported = run_cli("-c", str(config), "results", batch_id, "-o", str(out), "--errors", str(errors))
    assert exported.returncode == 0, exported.stderr.decode()
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["custom_id"] for r in results] == [line["custom_id"] for line in lines]
    for line, result in zip(lines, results):
        content = result["response"]["body"]["choices"][0]["message"]["content"]
        assert content == "Mock reply to: " + line["messages"][0]["content"]
        assert result["response"]["status_code"] == 200 and result["error"] is None
    assert errors.read_text() == ""

    stats = mock_provider.stats()
    assert stats["completed"] == 200
    assert stats["duplicates"] == 0
    assert stats["usage"]["total_tokens"] == status["usage"]["total_tokens"]
    # Two worker processes ran; between them they claimed each job once.
    claimed = fleet.claimed_per_worker()
    assert len(claimed) == 2 and sum(claimed) == 200, fleet.log()


def test_duplicate_wake_messages_call_the_provider_once(
    tmp_path, postgres_url, redis_namespace, redis_server, mock_provider, write_config
):
    """Dramatiq delivers at least once; a job still runs once however often it is announced."""
    from dispatcher import Client

    config = write_config(
        [("chat", openai_deployment(mock_provider))],
        settings={"database_url": postgres_url, "redis_url": redis_server, "namespace": redis_namespace},
    )
    client = Client(config)
    try:
        batch = client.submit([chat_lines(1, prefix="dup")[0]], model="chat")
        client.messaging.notify(["chat"], copies=50)  # the same announcement, delivered 50 more times
        with WorkerFleet(config, processes=2):
            status = client.wait(batch.batch_id, timeout=60)
    finally:
        client.close()
    assert status.succeeded == 1
    stats = mock_provider.stats()
    assert stats["requests"] == 1 and stats["completed"] == 1
