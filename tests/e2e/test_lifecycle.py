"""Batch lifecycle: idempotent submit, cancel, retry, completion window, SIGTERM, lost database."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.conftest import chat_lines, openai_deployment, run_cli, write_jsonl
from tests.e2e.test_faults import results_by_id, submit, wait_done
from tests.e2e.workers import WorkerFleet
from tests.helpers.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet_config(postgres_url, redis_server, redis_namespace, write_config):
    def make(provider, *, router=None, worker=None, **params):
        return write_config(
            [("chat", openai_deployment(provider, **params))],
            router=router,
            settings={"database_url": postgres_url, "redis_url": redis_server,
                      "namespace": redis_namespace, "worker": worker or {}},
        )
    return make


def test_idempotency_key_returns_the_existing_batch(tmp_path, mock_provider, fleet_config):
    config = fleet_config(mock_provider)
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(5, model="chat"))
    first = run_cli("-c", str(config), "submit", str(source), "--idempotency-key", "nightly-2026-11-24")
    second = run_cli("-c", str(config), "submit", str(source), "--idempotency-key", "nightly-2026-11-24")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert b"seen before" in second.stderr
    listed = json.loads(run_cli("-c", str(config), "list", "--json").stdout)
    assert len(listed) == 1


def test_cancel_stops_queued_jobs_lets_in_flight_finish_and_keeps_partial_results(
    tmp_path, start_mock_provider, fleet_config
):
    provider = start_mock_provider(latency_ms=400)
    config = fleet_config(provider, worker={"concurrency": 10})
    jobs = 200
    batch_id = submit(config, write_jsonl(tmp_path / "in.jsonl", chat_lines(jobs, model="chat")))
    with WorkerFleet(config, processes=1):
        while provider.stats()["completed"] < 20:
            time.sleep(0.1)
        cancelled = run_cli("-c", str(config), "cancel", batch_id)
        assert cancelled.returncode == 0, cancelled.stderr.decode()
        status = wait_done(config, batch_id, timeout=30)
        time.sleep(1.0)
        seen_after_end = provider.stats()["requests"]
    assert status["status"] == "cancelled"
    counts = status["request_counts"]
    assert counts["completed"] >= 20 and counts["completed"] + status["cancelled_requests"] == jobs
    assert seen_after_end == counts["completed"]  # nothing was sent for a cancelled job
    out, errors = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    run_cli("-c", str(config), "results", batch_id, "-o", str(out), "--errors", str(errors))
    assert len(out.read_text().splitlines()) == counts["completed"]
    error_lines = [json.loads(line) for line in errors.read_text().splitlines()]
    assert len(error_lines) == status["cancelled_requests"]
    assert {e["error"]["code"] for e in error_lines} == {"batch_cancelled"}


def test_retry_failed_queues_failed_requests_again(tmp_path, mock_provider, fleet_config):
    config = fleet_config(mock_provider, router={"num_retries": 1})
    flaky = {"custom_id": "flaky", "model": "chat",
             "messages": [{"role": "user", "content": "needs patience [[mock:fail_first=3]]"}]}
    batch_id = submit(config, write_jsonl(tmp_path / "in.jsonl", [flaky] + chat_lines(3, model="chat")))
    with WorkerFleet(config, processes=1):
        first = wait_done(config, batch_id)
        assert first["request_counts"] == {"total": 4, "completed": 3, "failed": 1}
        retried = run_cli("-c", str(config), "retry", batch_id, "--failed")
        assert retried.returncode == 0, retried.stderr.decode()
        assert b"1 failed requests queued again" in retried.stderr
        second = wait_done(config, batch_id)
    assert second["status"] == "completed"
    assert second["request_counts"] == {"total": 4, "completed": 4, "failed": 0}
    assert "flaky" in results_by_id(config, batch_id, tmp_path)


def test_jobs_not_started_within_the_completion_window_expire(tmp_path, mock_provider, fleet_config):
    config = fleet_config(mock_provider)
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(5, model="chat"))
    result = run_cli("-c", str(config), "submit", str(source), "--completion-window", "1s")
    batch_id = result.stdout.decode().strip()
    time.sleep(1.5)  # no worker yet: the window passes
    with WorkerFleet(config, processes=1):
        status = wait_done(config, batch_id, timeout=30)
    assert status["status"] == "expired" and status["expired_requests"] == 5
    assert mock_provider.stats()["requests"] == 0
    errors = tmp_path / "err.jsonl"
    run_cli("-c", str(config), "results", batch_id, "--errors", str(errors), "-o", str(tmp_path / "o.jsonl"))
    codes = {json.loads(line)["error"]["code"] for line in errors.read_text().splitlines()}
    assert codes == {"batch_expired"}


def test_sigterm_finishes_calls_in_flight_and_hands_back_the_rest(tmp_path, start_mock_provider, fleet_config):
    provider = start_mock_provider(latency_ms=1500)
    config = fleet_config(provider, worker={"concurrency": 10, "shutdown_grace": 10})
    jobs = 50
    batch_id = submit(config, write_jsonl(tmp_path / "in.jsonl", chat_lines(jobs, model="chat")))
    fleet = WorkerFleet(config, processes=1)
    while provider.stats()["in_flight"] < 10:
        time.sleep(0.05)
    fleet.process.send_signal(signal.SIGTERM)
    assert fleet.process.wait(30) == 0
    stats = provider.stats()
    assert stats["in_flight"] == 0 and stats["completed"] == stats["requests"]  # nothing cut off
    done_by_first = stats["completed"]
    assert done_by_first < jobs
    with WorkerFleet(config, processes=1):
        status = wait_done(config, batch_id)
    assert status["request_counts"] == {"total": jobs, "completed": jobs, "failed": 0}
    assert provider.stats()["duplicates"] == 0


def test_database_briefly_unreachable_loses_no_result(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config
):
    proxy = TcpProxy("127.0.0.1", 5432)
    proxied_url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    provider = start_mock_provider(latency_ms=200)
    config = write_config(
        [("chat", openai_deployment(provider))],
        settings={"database_url": proxied_url, "redis_url": redis_server, "namespace": redis_namespace,
                  "worker": {"concurrency": 20, "dead_after": 30}},
    )
    jobs = 300
    lines = chat_lines(jobs, model="chat")
    batch_id = submit(config, write_jsonl(tmp_path / "in.jsonl", lines))
    try:
        with WorkerFleet(config, processes=2) as fleet:
            while provider.stats()["completed"] < 60:
                time.sleep(0.05)
            proxy.cut()
            time.sleep(3.0)  # calls keep finishing; their results must wait for the database
            proxy.restore()
            status = wait_done(config, batch_id, timeout=90)
            log = fleet.log()
        results = results_by_id(config, batch_id, tmp_path)
    finally:
        proxy.close()
    assert "could not record" in log or "cannot claim" in log  # the outage was felt
    assert status["request_counts"] == {"total": jobs, "completed": jobs, "failed": 0}
    assert sorted(results) == sorted(line["custom_id"] for line in lines)
    assert provider.stats()["duplicates"] == 0
