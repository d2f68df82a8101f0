"""Submit's store phase: nothing runs before a batch is stored whole, a cancel while storing
ends the batch, racing submits with one idempotency key make one batch, bad names are refused.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from dispatcher import Client
from dispatcher.errors import DispatcherError, UsageError
from dispatcher.store import jobs as job_sql
from dispatcher.store.database import Database
from dispatcher.store.migrate import upgrade
from dispatcher.store.tables import BatchStatus, JobStatus, batches, jobs
from tests.conftest import chat_lines, openai_deployment, run_cli, write_jsonl
from tests.helpers.sql import query as rows

KEY = "race-key"


@pytest.fixture
def client_for(write_config, mock_provider):
    """Factory: an embedded Client on a database URL (no worker runs unless started)."""
    made: list[Client] = []

    def make(database_url: str) -> Client:
        config = write_config([("chat", openai_deployment(mock_provider))],
                              settings={"database_url": database_url})
        client = Client(config)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_claims_skip_the_jobs_of_a_batch_still_being_stored(database_url):
    database = Database(database_url)
    upgrade(database)
    try:
        now = time.time()
        with database.write() as connection:
            for batch_id, status, priority in (("b_storing", BatchStatus.VALIDATING, 0),
                                               ("b_stored", BatchStatus.IN_PROGRESS, 5)):
                connection.execute(batches.insert().values(
                    id=batch_id, status=status, created_at=now, total=2, storing_until=now + 60))
                job_sql.insert_jobs(connection, [
                    dict(batch_id=batch_id, seq=seq, custom_id=f"{batch_id}-{seq}", model_group="chat",
                         priority=priority, fair_key=float(seq), body="{}", status=JobStatus.QUEUED,
                         created_at=now)
                    for seq in range(2)
                ])
        with database.write() as connection:
            claimed = job_sql.claim_jobs(connection, group="chat", limit=10, worker_id="w", now=time.time(),
                                         postgres=not database.is_sqlite)
        assert sorted(job.custom_id for job in claimed) == ["b_stored-0", "b_stored-1"]
    finally:
        database.dispose()


def gated(lines: list[dict], barrier: threading.Barrier):
    """The input, released only when every submit of the race has looked its key up."""
    barrier.wait(timeout=60)
    yield from lines


def test_two_submits_racing_with_one_key_make_one_batch_and_both_return_its_id(postgres_url, client_for):
    lines = chat_lines(6000, model="chat")  # three chunks: the loser waits while the winner stores
    barrier = threading.Barrier(2)
    results, errors = [], []
    # Built before the race: both would write (and read) the same config file at once.
    clients = [client_for(postgres_url) for _ in range(2)]

    def submit(client: Client) -> None:
        try:
            results.append(client.submit(gated(lines, barrier), idempotency_key=KEY))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert len({result.batch_id for result in results}) == 1
    assert sorted(result.existing for result in results) == [False, True]
    [(batch_id, status, total)] = rows(postgres_url, "SELECT id, status, total FROM batches")
    assert (batch_id, status, total) == (results[0].batch_id, "in_progress", 6000)
    assert rows(postgres_url, "SELECT count(*) FROM jobs")[0][0] == 6000


def wait_for_stored_jobs(database_url: str, timeout: float = 60) -> str:
    """The id of the (only) batch once some of its jobs are stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rows(database_url, "SELECT batch_id FROM jobs LIMIT 1")
        if found:
            return found[0][0]
        time.sleep(0.005)
    raise AssertionError("no job was stored")


def test_a_resubmit_while_the_first_submit_is_storing_waits_and_returns_the_whole_batch(
    postgres_url, client_for
):
    first: list = []
    thread = threading.Thread(target=lambda: first.append(
        client_for(postgres_url).submit(chat_lines(30_000, model="chat"), idempotency_key=KEY)))
    thread.start()
    try:
        batch_id = wait_for_stored_jobs(postgres_url)
        again = client_for(postgres_url).submit(chat_lines(1, model="chat"), idempotency_key=KEY)
        status = rows(postgres_url, "SELECT status FROM batches WHERE id = :id", id=batch_id)[0][0]
    finally:
        thread.join(120)
    assert (again.batch_id, again.existing) == (batch_id, True)
    assert status == "in_progress", "the resubmit returned a batch that was still being stored"
    assert first[0].batch_id == batch_id and again.total == 30_000


def test_cancel_while_a_live_submit_stores_ends_the_batch_cancelled_and_stops_the_submit(
    postgres_url, client_for
):
    outcome: list = []

    def submit() -> None:
        try:
            outcome.append(client_for(postgres_url).submit(chat_lines(30_000, model="chat")))
        except DispatcherError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=submit)
    thread.start()
    try:
        batch_id = wait_for_stored_jobs(postgres_url)
        client_for(postgres_url).cancel(batch_id)
    finally:
        thread.join(120)
    [error] = outcome
    assert isinstance(error, DispatcherError) and "cancelled while its requests were being stored" in str(error)
    [(status, error_message)] = rows(
        postgres_url, "SELECT status, error_message FROM batches WHERE id = :id", id=batch_id)
    assert status == "cancelled"
    assert "none ran" in error_message
    assert rows(postgres_url, "SELECT count(*) FROM jobs")[0][0] == 0


@pytest.mark.parametrize("option, value, message", [
    ("--name", "n" * 201, "--name is 201 characters long; at most 200"),
    ("--idempotency-key", "k" * 300, "--idempotency-key is 300 characters long; at most 200"),
])
def test_a_name_or_key_longer_than_its_column_is_refused_before_anything_is_stored(
    tmp_path, write_config, mock_provider, postgres_url, option, value, message
):
    config = write_config([("chat", openai_deployment(mock_provider))], settings={"database_url": postgres_url})
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(2, model="chat"))
    result = run_cli("-c", str(config), "submit", str(source), option, value)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert message in stderr
    assert "Traceback" not in stderr and "INSERT" not in stderr
    assert rows(postgres_url, "SELECT count(*) FROM batches")[0][0] == 0


@pytest.mark.parametrize("metadata, message", [
    ({f"k{i}": "v" for i in range(17)}, "--metadata has 17 pairs; at most 16"),
    ({"k" * 65: "v"}, "is 65 characters long; at most 64"),
    ({"note": "v" * 513}, "--metadata value of 'note' is 513 characters long; at most 512"),
])
def test_metadata_over_openai_limits_is_refused(sqlite_url, client_for, metadata, message):
    client = client_for(sqlite_url)
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        client.submit(chat_lines(1, model="chat"), metadata=metadata)
    with client.database.read() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(batches)).scalar() == 0
        assert connection.execute(sa.select(sa.func.count()).select_from(jobs)).scalar() == 0
