"""Retention (store/retention.py): prune drops the bodies of old, ended, downloaded batches
and nothing else; usage reports the same totals after; a pruned batch's results say so."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from dispatcher import Client
from dispatcher.errors import UsageError
from dispatcher.store import fleet_turns, retention
from dispatcher.store.tables import jobs
from tests.conftest import chat_lines, openai_deployment, run_cli

LATER = 3600.0  # a cutoff after every batch of the test ended


@pytest.fixture
def client(database_url, mock_provider, write_config):
    config = write_config([("chat", openai_deployment(mock_provider))],
                          settings={"database_url": database_url, "redis_url": None})
    with Client(config) as client:
        yield client


def bodies(client: Client, batch_id: str) -> list[tuple[str | None, str | None]]:
    with client.database.read() as connection:
        return [tuple(row) for row in connection.execute(
            sa.select(jobs.c.body, jobs.c.response).where(jobs.c.batch_id == batch_id).order_by(jobs.c.seq))]


def ended_batch(client: Client, prefix: str, tmp_path, *, download: bool) -> str:
    info = client.run(chat_lines(3, prefix=prefix, model="chat"))
    assert info.succeeded == 3
    if download:
        client.write_results(info.id, tmp_path / f"{prefix}.jsonl")
    return info.id


def test_prune_drops_only_old_downloaded_batches_and_keeps_usage(client, tmp_path):
    downloaded = ended_batch(client, "down", tmp_path, download=True)
    undownloaded = ended_batch(client, "undown", tmp_path, download=False)
    running = client.submit(chat_lines(2, prefix="run", model="chat")).batch_id  # no worker: in progress
    usage_before = client.usage(by="batch")

    dry = client.prune(finished_before=time.time() + LATER, dry_run=True)
    assert (dry.batches, dry.jobs, dry.skipped_undownloaded) == ([downloaded], 3, 1)
    assert all(body is not None for body, _ in bodies(client, downloaded))

    pruned = client.prune(finished_before=time.time() + LATER)
    assert pruned.batches == [downloaded]
    assert bodies(client, downloaded) == [(None, None)] * 3
    assert all(body and response for body, response in bodies(client, undownloaded))
    assert all(body for body, _ in bodies(client, running))
    assert client.usage(by="batch") == usage_before
    assert client.status(downloaded).succeeded == 3  # counters stay
    with pytest.raises(UsageError, match="pruned"):
        client.write_results(downloaded, tmp_path / "again.jsonl")
    with pytest.raises(UsageError, match="pruned"):
        list(client.results(downloaded))

    assert client.prune(finished_before=time.time() + LATER).batches == []  # once only
    asked = client.prune(finished_before=time.time() + LATER, include_undownloaded=True)
    assert asked.batches == [undownloaded]
    assert bodies(client, undownloaded) == [(None, None)] * 3
    assert all(body for body, _ in bodies(client, running))
    assert client.usage(by="batch") == usage_before


def test_a_recent_cutoff_prunes_nothing(client, tmp_path):
    batch_id = ended_batch(client, "new", tmp_path, download=True)
    assert client.prune(finished_before="1d").batches == []
    assert all(body for body, _ in bodies(client, batch_id))


def test_prune_works_in_chunks(client, tmp_path):
    batch_id = ended_batch(client, "chunked", tmp_path, download=True)
    pruned = retention.prune(client.database, finished_before=time.time() + LATER, now=time.time(), chunk=2)
    assert pruned.batches == [batch_id]
    assert bodies(client, batch_id) == [(None, None)] * 3


def test_one_worker_of_the_fleet_takes_each_turn(database_url):
    from dispatcher.store.database import Database
    from dispatcher.store.migrate import upgrade

    database = Database(database_url)
    try:
        upgrade(database)
        turns = []
        for now in (100.0, 100.0, 150.0, 700.0):
            with database.write() as connection:
                turns.append(fleet_turns.take_turn(connection, "retention", now, 600.0))
        assert turns == [True, False, False, True]
    finally:
        database.dispose()


def test_cli_prune_and_results_of_a_pruned_batch(tmp_path, mock_provider, write_config):
    config = write_config([("chat", openai_deployment(mock_provider))],
                          settings={"database_url": f"sqlite:///{tmp_path / 'cli.db'}", "redis_url": None})
    with Client(config) as client:
        batch_id = ended_batch(client, "cli", tmp_path, download=True)

    dry = run_cli("-c", str(config), "prune", "--finished-before", "0s", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would prune the bodies of 1 batch (3 jobs)" in dry.stderr.decode() and batch_id in dry.stderr.decode()
    done = run_cli("-c", str(config), "prune", "--finished-before", "0s", "--json")
    assert json.loads(done.stdout)["batches"] == [batch_id]

    results = run_cli("-c", str(config), "results", batch_id)
    assert results.returncode == 2
    assert results.stdout == b""
    assert "were pruned" in results.stderr.decode() and "(retention)" in results.stderr.decode()


def test_workers_prune_on_their_own_with_a_retention_setting(tmp_path, mock_provider, write_config):
    config = write_config([("chat", openai_deployment(mock_provider))], settings={
        "database_url": f"sqlite:///{tmp_path / 'w.db'}", "redis_url": None,
        "retention": {"finished_before": "0s", "interval": 0.2},
    })
    with Client(config) as client:
        batch_id = ended_batch(client, "kept", tmp_path, download=False)
        downloaded = ended_batch(client, "pruned", tmp_path, download=True)
        client.start_worker()  # run() stopped its worker with the batch
        deadline = time.monotonic() + 15
        while client.status(downloaded).pruned_at is None:
            assert time.monotonic() < deadline, "no worker pruned the downloaded batch"
            time.sleep(0.1)
        assert bodies(client, downloaded) == [(None, None)] * 3
        assert client.status(batch_id).pruned_at is None  # never downloaded
