"""Every call on record, once (store/calls.py): a job that succeeded holds its call on its own
row; the calls before it (errors, retries) are attempts rows; usage counts each call once."""

from __future__ import annotations

import sqlalchemy as sa

from dispatcher import Client
from dispatcher.store.calls import calls
from dispatcher.store.tables import attempts, jobs
from tests.conftest import openai_deployment
from tests.engine.test_engine import run_engine_until_done


def test_a_success_holds_its_call_and_the_errors_before_it_are_attempts(
    write_config, database_url, mock_provider
):
    config = write_config([("chat", openai_deployment(mock_provider))],
                          settings={"database_url": database_url, "redis_url": None},
                          router={"num_retries": 3, "retry_after": 0})
    lines = [
        {"custom_id": "plain", "messages": [{"role": "user", "content": "hello"}]},
        {"custom_id": "flaky", "messages": [{"role": "user", "content": "twice [[mock:fail_first=2]]"}]},
    ]
    with Client(config) as client:
        batch = client.submit([{**line, "model": "chat"} for line in lines])
        run_engine_until_done(client, batch.batch_id)
        info = client.status(batch.batch_id)
        with client.database.read() as connection:
            ended = {row.custom_id: row for row in connection.execute(
                sa.select(jobs.c.id, jobs.c.custom_id, jobs.c.call_outcome, jobs.c.worker_id, jobs.c.attempts,
                          jobs.c.total_tokens))}
            attempt_rows = connection.execute(
                sa.select(attempts.c.job_id, attempts.c.outcome, attempts.c.status_code)).all()
            every_call = calls()
            recorded = connection.execute(
                sa.select(every_call.c.job_id, every_call.c.outcome, every_call.c.number)
                .order_by(every_call.c.job_id, every_call.c.number)).all()
        usage = client.usage(by="batch")
    stats = mock_provider.stats()
    assert info.succeeded == 2 and stats["requests"] == 4
    plain, flaky = ended["plain"], ended["flaky"]
    assert plain.call_outcome == flaky.call_outcome == "success"
    assert plain.worker_id and flaky.worker_id  # the worker whose call it was
    # Only the two 500s are attempts rows; the successes are read from their jobs.
    assert sorted((row.job_id, row.outcome, row.status_code) for row in attempt_rows) == [
        (flaky.id, "error", 500), (flaky.id, "error", 500)]
    assert [tuple(row) for row in recorded] == sorted([
        (plain.id, "success", 1), (flaky.id, "error", 1), (flaky.id, "error", 2), (flaky.id, "success", 3)])
    [row] = usage
    assert (row["requests"], row["failures"]) == (4, 2) == (stats["requests"], 2)
    assert row["total_tokens"] == info.total_tokens == plain.total_tokens + flaky.total_tokens
