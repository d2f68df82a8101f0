"""max_parallel_requests: a worker process never has more calls in flight to a deployment."""

from __future__ import annotations

import json

import pytest

from tests.conftest import chat_lines, openai_deployment, run_cli, write_jsonl

pytestmark = pytest.mark.slow


def test_each_deployment_stays_within_its_parallel_cap(tmp_path, start_mock_provider, write_config):
    limited = start_mock_provider(latency_ms=150, jitter_ms=50)
    free = start_mock_provider(latency_ms=150, jitter_ms=50)
    config = write_config(
        [
            # rpm makes this one go through the limit schedule; the other is granted directly.
            ("chat", openai_deployment(limited, rpm=60000, max_parallel_requests=2)),
            ("chat", openai_deployment(free, max_parallel_requests=3)),
        ],
        settings={"database_url": f"sqlite:///{tmp_path / 'e.db'}", "worker": {"concurrency": 64}},
    )
    lines = chat_lines(80, prefix="cap", model="chat")
    result = run_cli("-c", str(config), "run", str(write_jsonl(tmp_path / "in.jsonl", lines)),
                     "-o", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr.decode()
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["custom_id"] for r in results] == [line["custom_id"] for line in lines]

    limited_stats, free_stats = limited.stats(), free.stats()
    assert limited_stats["completed"] + free_stats["completed"] == 80
    assert limited_stats["duplicates"] == free_stats["duplicates"] == 0
    # Saturated but never above the cap (64 calls were allowed by concurrency).
    assert limited_stats["max_in_flight"] == 2
    assert free_stats["max_in_flight"] == 3
