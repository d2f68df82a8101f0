"""Lost COMMIT replies: PostgreSQL committed, the worker saw its connection die.

A fault proxy between the workers and PostgreSQL forwards a COMMIT, lets the server execute
it, swallows the reply and closes the connection. The worker cannot know whether its
transaction committed; the batch must still end, with one attempt row per provider request.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import chat_lines, openai_deployment, write_jsonl
from tests.e2e.test_faults import attempt_rows, results_by_id, submit, wait_done
from tests.e2e.workers import WorkerFleet
from tests.helpers.fault_proxy import FaultProxy

pytestmark = pytest.mark.slow

CLAIM = b"FOR UPDATE SKIP LOCKED"  # in the claim statement's text (and no other statement's)
# In every final result write (store/jobs.py _FINISH, store/finish_many.py), and in no other
# statement a worker sends (the usage reports that read it run in the CLI, not through the proxy).
RESULTS = b"call_outcome"


@pytest.fixture
def postgres_proxy(postgres_url):
    with FaultProxy(make_url(postgres_url).port or 5432) as proxy:
        yield proxy


def configs(write_config, provider, postgres_url, proxy, redis_server, redis_namespace):
    """The workers' config (through the proxy) and the CLI's (straight to PostgreSQL)."""
    common = {"redis_url": redis_server, "namespace": redis_namespace, "worker": {"concurrency": 20}}
    deployments = [("chat", openai_deployment(provider))]
    workers = write_config(deployments, settings={**common, "database_url": proxy.rewrite(postgres_url)},
                           name="workers.yaml")
    cli = write_config(deployments, settings={**common, "database_url": postgres_url}, name="cli.yaml")
    return workers, cli


def test_lost_commit_reply_on_a_claim_hands_the_jobs_back_and_the_batch_ends(
    tmp_path, postgres_url, postgres_proxy, redis_server, redis_namespace, start_mock_provider,
    write_config, figures,
):
    provider = start_mock_provider(latency_ms=20)
    workers, cli = configs(write_config, provider, postgres_url, postgres_proxy, redis_server, redis_namespace)
    jobs = 200
    batch_id = submit(cli, write_jsonl(tmp_path / "in.jsonl", chat_lines(jobs, model="chat")))
    postgres_proxy.lose_reply(b"COMMIT", after=CLAIM, times=2)
    started = time.monotonic()
    with WorkerFleet(workers, processes=1) as fleet:
        status = wait_done(cli, batch_id, timeout=25)  # before the fix: never (jobs stuck running)
        log = fleet.log()
    elapsed = time.monotonic() - started
    assert postgres_proxy.faults == 2
    assert status["request_counts"] == {"total": jobs, "completed": jobs, "failed": 0}
    assert "claimed by a transaction whose reply was lost are queued again" in log
    stats = provider.stats()
    rows = attempt_rows(postgres_url)
    assert stats["duplicates"] == 0 and stats["requests"] == jobs
    assert len(rows) == stats["requests"]
    assert len(results_by_id(cli, batch_id, tmp_path)) == jobs
    figures.update(jobs=jobs, lost_claim_replies=postgres_proxy.faults, results=jobs,
                   provider_requests=stats["requests"], attempt_rows=len(rows),
                   provider_duplicates=stats["duplicates"], wall_s=round(elapsed, 1))


def test_lost_commit_reply_on_a_result_write_records_each_call_once(
    tmp_path, postgres_url, postgres_proxy, redis_server, redis_namespace, start_mock_provider,
    write_config, figures,
):
    provider = start_mock_provider(latency_ms=20)
    workers, cli = configs(write_config, provider, postgres_url, postgres_proxy, redis_server, redis_namespace)
    jobs = 300
    batch_id = submit(cli, write_jsonl(tmp_path / "in.jsonl", chat_lines(jobs, model="chat")))
    postgres_proxy.lose_reply(b"COMMIT", after=RESULTS, times=3)
    started = time.monotonic()
    with WorkerFleet(workers, processes=1) as fleet:
        status = wait_done(cli, batch_id, timeout=25)
        log = fleet.log()
    elapsed = time.monotonic() - started
    assert postgres_proxy.faults == 3
    assert status["request_counts"] == {"total": jobs, "completed": jobs, "failed": 0}
    stats = provider.stats()
    rows = attempt_rows(postgres_url)
    # Before the fix: the retried write inserted the attempts again and counted usage twice.
    assert len(rows) == stats["requests"] == jobs
    assert status["usage"]["total_tokens"] == stats["usage"]["total_tokens"]
    assert sum(r.total_tokens for r in rows) == stats["usage"]["total_tokens"]
    assert "taken over" not in log  # nothing was taken over: the first write had committed
    assert len(results_by_id(cli, batch_id, tmp_path)) == jobs
    figures.update(jobs=jobs, lost_result_replies=postgres_proxy.faults, results=jobs,
                   provider_requests=stats["requests"], attempt_rows=len(rows),
                   provider_duplicates=stats["duplicates"],
                   billed_tokens=stats["usage"]["total_tokens"],
                   recorded_tokens=status["usage"]["total_tokens"], wall_s=round(elapsed, 1))
