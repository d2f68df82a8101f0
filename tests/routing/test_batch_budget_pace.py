"""A batch with --max-cost runs at full pace while its budget has room.

When the estimated cost of the calls in flight fills a batch's max_cost, a claim hands back
the jobs that do not fit. Those jobs must start as soon as calls of the batch end (their
reservations are freed), not at the next idle poll: issue 10, "run --max-cost 2 on 200 calls
crawls at ~7 calls/s long before the budget binds".
"""

from __future__ import annotations

import itertools

import sqlalchemy as sa

from dispatcher import Client
from tests.conftest import chat_lines
from tests.helpers.sql import CALLS

JOBS = 40
OUT_PRICE = 0.005  # USD per completion token
# Each call is estimated at max_tokens (16) completion tokens: 0.08 USD. The mock answers
# "ok" (one token, 0.005 USD), so the spend never reaches the budget, but the estimates of
# the calls in flight do: about six calls of the batch may run at once.
MAX_COST = 0.5
MOST_IN_FLIGHT = 7  # 6 * 0.08 = 0.48 < 0.5, so a seventh may start; an eighth never
POLL_INTERVAL_S = 60.0  # the idle poll must play no part in the pace


def test_jobs_held_back_by_the_budget_start_when_calls_end(write_config, database_url):
    config = write_config(
        [("chat", {"model": "mock/echo", "mock_latency_ms": 20, "mock_response": "ok",
                   "input_cost_per_token": 0, "output_cost_per_token": OUT_PRICE})],
        settings={"database_url": database_url, "worker": {"poll_interval": POLL_INTERVAL_S}},
    )
    with Client(config) as client:
        client.start_worker()
        batch = client.submit(chat_lines(JOBS, model="chat"), max_cost=MAX_COST)
        # Far less than one poll interval: before the fix the first claim's few jobs ran,
        # then the rest waited for the poll (60 s per handful of jobs).
        info = client.wait(batch.batch_id, timeout=20)
        assert info.status == "completed", f"{info.succeeded}/{JOBS} done after 20 s"
        assert info.succeeded == JOBS
        with client.database.read() as connection:
            calls = connection.execute(
                sa.text(f"SELECT started_at, ended_at FROM {CALLS} AS a WHERE batch_id = :b"),
                {"b": batch.batch_id},
            ).all()
    # The guarantee is unchanged: never more calls in flight than the budget's estimates allow.
    assert len(calls) == JOBS
    events = sorted(itertools.chain(((end, -1) for _, end in calls), ((start, 1) for start, _ in calls)))
    in_flight = list(itertools.accumulate(step for _, step in events))
    assert max(in_flight) <= MOST_IN_FLIGHT
    assert max(in_flight) > 1  # the claim still takes several jobs at once while there is room
