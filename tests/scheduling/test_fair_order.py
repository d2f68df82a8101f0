"""Claim order across batches: strict between priorities, round-robin (weighted) within one."""

from __future__ import annotations

import collections
import time

from dispatcher import Client
from dispatcher.store import jobs as job_sql
from tests.conftest import chat_lines


def client_for(write_config, database_url) -> Client:
    config = write_config([("chat", {"model": "mock/echo"})], settings={"database_url": database_url})
    return Client(config)


def claim_order(client: Client, count: int) -> list[str]:
    with client.database.write() as connection:
        claimed = job_sql.claim_jobs(connection, group="chat", limit=count, worker_id="test",
                                     now=time.time(), postgres=not client.database.is_sqlite)
    return [job.batch_id for job in sorted(claimed, key=lambda j: j.id)]


def claim_sequence(client: Client, total: int) -> list[str]:
    """Batch ids in the order single claims take them (one claim per job)."""
    return [claim_order(client, 1)[0] for _ in range(total)]


def test_a_later_batch_of_the_same_priority_takes_turns_with_the_earlier_one(write_config, database_url):
    client = client_for(write_config, database_url)
    big = client.submit(chat_lines(100, prefix="big"), model="chat", priority=5).batch_id
    claim_sequence(client, 30)  # the big batch has been running for a while
    small = client.submit(chat_lines(10, prefix="small"), model="chat", priority=5).batch_id
    order = claim_sequence(client, 20)
    assert order == [big, small] * 10 or order == [small, big] * 10
    assert claim_sequence(client, 5) == [big] * 5  # small is done; big continues
    client.close()


def test_weight_gives_a_batch_more_turns(write_config, database_url):
    client = client_for(write_config, database_url)
    a = client.submit(chat_lines(60, prefix="a"), model="chat").batch_id
    b = client.submit(chat_lines(60, prefix="b"), model="chat", weight=3).batch_id
    counts = collections.Counter(claim_sequence(client, 40))
    assert counts[b] == 30 and counts[a] == 10
    client.close()


def test_priorities_are_strict_and_lines_can_override_their_batch(write_config, database_url):
    client = client_for(write_config, database_url)
    lines = chat_lines(5, prefix="bulk")
    lines[3]["priority"] = "urgent"
    bulk = client.submit(lines, model="chat", priority="bulk").batch_id
    high = client.submit(chat_lines(3, prefix="high"), model="chat", priority="high").batch_id
    with client.database.write() as connection:
        claimed = job_sql.claim_jobs(connection, group="chat", limit=9, worker_id="t", now=time.time(),
                                     postgres=not client.database.is_sqlite)
    order = [(job.batch_id, job.custom_id) for job in claimed]
    assert order[0] == (bulk, "bulk-3")  # the urgent line of the bulk batch
    assert [b for b, _ in order[1:4]] == [high] * 3
    assert [c for _, c in order[4:]] == ["bulk-0", "bulk-1", "bulk-2", "bulk-4"]
    client.close()


def test_reprioritize_moves_waiting_jobs_and_not_before_holds_a_batch(write_config, database_url):
    client = client_for(write_config, database_url)
    normal = client.submit(chat_lines(5, prefix="n"), model="chat", priority=5).batch_id
    later = client.submit(chat_lines(5, prefix="l"), model="chat", priority=7).batch_id
    held = client.submit(chat_lines(5, prefix="h"), model="chat", priority=0, not_before=time.time() + 3600).batch_id
    info, moved = client.reprioritize(later, "urgent")
    assert moved == 5 and info.priority == 0
    order = claim_sequence(client, 10)
    assert order == [later] * 5 + [normal] * 5  # the held batch is not claimable yet
    assert held not in order
    client.close()
