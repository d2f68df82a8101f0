"""The schedule spends the room a per-minute provider's rate-limit headers report, and keeps
the even pace where the provider counts over a shorter window. Measured at the mock provider."""

from __future__ import annotations

import time

import pytest
import redis

from tests.conftest import chat_lines, openai_deployment, run_cli, write_jsonl
from tests.e2e.workers import WorkerFleet
from tests.helpers.mock_provider import admission_times, assert_room_spent_at_once
from tests.helpers.sql import query

pytestmark = pytest.mark.slow


def fleet_settings(postgres_url, redis_server, redis_namespace, **rate_limits) -> dict:
    settings = {"database_url": postgres_url, "redis_url": redis_server, "namespace": redis_namespace}
    if rate_limits:
        settings["rate_limits"] = rate_limits
    return settings


def wait_for_workers(postgres_url: str, count: int, fleet: WorkerFleet) -> None:
    deadline = time.monotonic() + 30
    while query(postgres_url, "SELECT count(*) AS n FROM workers WHERE stopped_at IS NULL")[0].n < count:
        assert time.monotonic() < deadline, fleet.log()
        time.sleep(0.1)


def run_batch(config, source, postgres_url: str) -> None:
    """Submit ``source`` to two worker processes and watch it to its end."""
    with WorkerFleet(config, processes=2) as fleet:
        wait_for_workers(postgres_url, 2, fleet)
        submitted = run_cli("-c", str(config), "submit", str(source))
        assert submitted.returncode == 0, submitted.stderr.decode()
        watched = run_cli("-c", str(config), "watch", submitted.stdout.decode().strip(), timeout=120)
        assert watched.returncode == 0, watched.stderr.decode() + fleet.log()


def test_a_per_minute_providers_room_is_spent_at_once(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config
):
    # 60 requests per 60 s: the even pace sends one a second, so 50 jobs would take 50 s.
    provider = start_mock_provider(rpm=60, window_s=60, latency_ms=50, jitter_ms=40)
    config = write_config(
        [("chat", openai_deployment(provider, rpm=60))],
        settings=fleet_settings(postgres_url, redis_server, redis_namespace),
    )
    jobs = 50
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(jobs, model="chat"))
    run_batch(config, source, postgres_url)
    # Even spacing would put 49 s between the first call and the last.
    assert_room_spent_at_once(provider, jobs)
    assert provider.stats()["peak_requests_in_window"] <= 60
    # Every call counted out of flight again: the next burst is not shrunk by calls long answered.
    client = redis.Redis.from_url(redis_server)
    limits = [key for key in client.scan_iter(f"{redis_namespace}:limit:*") if client.hget(key, "f") is not None]
    assert limits and all(int(client.hget(key, "f")) == 0 for key in limits)


def test_a_provider_counting_over_short_windows_gets_the_even_pace(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config
):
    # 30 per 10 s, told as 180 rpm: the provider says its limit is a sixth of the configured
    # one, so it counts over a shorter window: no bursts, the even pace (one per 0.34 s).
    provider = start_mock_provider(rpm=30, window_s=10, latency_ms=50, jitter_ms=40)
    config = write_config(
        [("chat", openai_deployment(provider, rpm=180))],
        settings=fleet_settings(postgres_url, redis_server, redis_namespace),
    )
    jobs = 36
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(jobs, model="chat"))
    run_batch(config, source, postgres_url)
    stats = provider.stats()
    assert stats["completed"] == jobs and stats["rate_limited"] == 0, stats["by_status"]
    assert stats["peak_requests_in_window"] <= 30
    times = admission_times(provider)
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Evenly spaced: no burst of the window's 30 at once (median gap near 60/180/0.97 s).
    assert sorted(gaps)[len(gaps) // 2] > 0.25, gaps
    assert times[9] - times[0] > 2.5, times


def test_an_urgent_call_takes_the_room_kept_for_it_behind_a_spent_window(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config
):
    # 40 per minute, a quarter kept for urgent calls: a backlog spends 40 - 2 (headroom) - 10
    # at once and the rest only when the window turns a minute later; urgent calls go at once.
    provider = start_mock_provider(rpm=40, window_s=60, latency_ms=50, jitter_ms=40)
    config = write_config(
        [("chat", openai_deployment(provider, rpm=40))],
        settings=fleet_settings(postgres_url, redis_server, redis_namespace, urgent_reserve=0.25),
    )
    backlog = write_jsonl(tmp_path / "bulk.jsonl", chat_lines(100, prefix="bulk", model="chat"))
    with WorkerFleet(config, processes=2) as fleet:
        wait_for_workers(postgres_url, 2, fleet)
        submitted = run_cli("-c", str(config), "submit", str(backlog), "--priority", "bulk")
        assert submitted.returncode == 0, submitted.stderr.decode()
        deadline = time.monotonic() + 20
        while provider.stats()["completed"] < 28:
            assert time.monotonic() < deadline, fleet.log()
            time.sleep(0.1)
        time.sleep(1.0)
        bulk_sent = provider.stats()["requests"]
        waits = []
        for i in range(3):
            urgent = write_jsonl(tmp_path / f"urgent{i}.jsonl", chat_lines(1, prefix=f"urgent{i}", model="chat"))
            before = provider.stats()["completed"]
            started = time.monotonic()
            result = run_cli("-c", str(config), "submit", str(urgent), "--priority", "urgent")
            assert result.returncode == 0, result.stderr.decode()
            while provider.stats()["completed"] <= before:
                assert time.monotonic() - started < 20, fleet.log()
                time.sleep(0.02)
            waits.append(time.monotonic() - started)
    stats = provider.stats()
    assert bulk_sent == 28, bulk_sent  # the backlog left the kept room alone
    assert stats["rate_limited"] == 0, stats["by_status"]
    # Each within the submit command's own start-up, far from the minute a spent window costs.
    assert max(waits) < 6, waits


def test_a_fleet_spends_a_per_minute_anthropic_providers_room_at_once(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config
):
    from tests.engine.test_anthropic_through_the_engine import CLAUDE, MOCK_KEY

    # anthropic-ratelimit-* headers (requests, input and output tokens per minute), shared by
    # two worker processes through Redis: the even pace would send one call a second.
    limits = {"rpm": 60, "itpm": 20_000, "otpm": 4_000}
    provider = start_mock_provider(api_key=MOCK_KEY, window_s=60, latency_ms=50, jitter_ms=40, **limits)
    deployment = {"model": f"anthropic/{CLAUDE}", "api_base": provider.root_url, "api_key": MOCK_KEY, **limits}
    config = write_config([("chat", deployment)], settings=fleet_settings(postgres_url, redis_server, redis_namespace))
    jobs = 40
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(jobs, model="chat", max_tokens=16))
    run_batch(config, source, postgres_url)
    assert_room_spent_at_once(provider, jobs)
