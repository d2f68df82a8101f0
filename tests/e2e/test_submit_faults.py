"""Faults around ``submit``: killed while storing, and Redis lost between the store and the wake.

A submit killed half-way must leave nothing that runs or stays stuck: the stored part of its
batch never reaches the provider, and the batch ends (failed, or cancelled if someone cancelled
it) once its storing lease is stale, freeing its idempotency key. A batch that is stored is a
success even when the wake message cannot be sent (workers poll).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from tests.conftest import chat_lines, cli_env, openai_deployment, run_cli, write_jsonl
from tests.e2e.workers import WorkerFleet
from tests.helpers.sql import query

pytestmark = pytest.mark.slow

BIG_INPUT = 40_000  # lines: about 20 chunks to store, so a kill lands in the middle
KEY = "nightly-2026-11-25"


@pytest.fixture
def fleet_config(write_config, mock_provider, postgres_url, redis_namespace, redis_server):
    """PostgreSQL + Redis; dead_after 3 s, so a storing lease is stale 3 s after a kill."""
    return write_config(
        [("chat", openai_deployment(mock_provider))],
        settings={"database_url": postgres_url, "redis_url": redis_server, "namespace": redis_namespace},
    )


def kill_while_storing(config, source, database_url: str) -> tuple[str, int, float]:
    """Start ``submit --idempotency-key KEY`` and SIGKILL it once some jobs are stored.

    Returns (batch id, jobs stored, time of the kill)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "-c", str(config), "submit", str(source), "--idempotency-key", KEY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
    )
    engine = sa.create_engine(database_url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            with engine.connect() as connection:
                stored = connection.execute(sa.text(
                    "SELECT b.id, count(j.id) FROM batches b JOIN jobs j ON j.batch_id = b.id GROUP BY b.id"
                )).first()
            if stored is not None:
                process.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                process.wait()
                break
            time.sleep(0.01)
        else:
            process.kill()
            raise AssertionError(f"submit ended before any job was seen: {process.communicate()}")
        with engine.connect() as connection:
            batch_id, jobs = connection.execute(sa.text(
                "SELECT b.id, count(j.id) FROM batches b JOIN jobs j ON j.batch_id = b.id GROUP BY b.id"
            )).one()
    finally:
        engine.dispose()
    return batch_id, jobs, killed_at


def wait_for_status(database_url: str, batch_id: str, wanted: str, timeout: float = 20) -> float:
    """Seconds until the batch reaches ``wanted``."""
    started = time.monotonic()
    status = None
    while time.monotonic() - started < timeout:
        status = query(database_url, "SELECT status FROM batches WHERE id = :id", id=batch_id)[0][0]
        if status == wanted:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} is still {status} after {timeout}s (wanted {wanted})")


def test_a_submit_killed_while_storing_runs_nothing_and_is_cleaned_up_by_workers(
    tmp_path, fleet_config, postgres_url, mock_provider, figures
):
    source = write_jsonl(tmp_path / "big.jsonl", chat_lines(BIG_INPUT, model="chat"))
    with WorkerFleet(fleet_config, 1) as fleet:
        batch_id, stored, killed_at = kill_while_storing(fleet_config, source, postgres_url)
        assert 0 < stored < BIG_INPUT
        [(status, storing_until)] = query(
            postgres_url, "SELECT status, storing_until FROM batches WHERE id = :id", id=batch_id)
        assert status == "validating" and storing_until is not None

        wait_for_status(postgres_url, batch_id, "failed")
        cleaned_after = time.monotonic() - killed_at
        [(key, error, total)] = query(
            postgres_url, "SELECT idempotency_key, error_message, total FROM batches WHERE id = :id", id=batch_id)
        assert key is None and total == 0
        assert f"{stored} of {BIG_INPUT} requests had been stored; none ran" in error
        assert query(postgres_url, "SELECT count(*) FROM jobs WHERE batch_id = :id", id=batch_id)[0][0] == 0
        assert mock_provider.stats()["requests"] == 0, "jobs of a half-stored batch reached the provider"
        assert "left half-stored by a submit that stopped" in fleet.log()

        # The key is free again: the same command makes a new batch, which runs.
        small = write_jsonl(tmp_path / "small.jsonl", chat_lines(3, model="chat"))
        again = run_cli("-c", str(fleet_config), "submit", str(small), "--idempotency-key", KEY)
        assert again.returncode == 0, again.stderr.decode()
        new_id = again.stdout.decode().strip()
        assert new_id != batch_id
        wait_for_status(postgres_url, new_id, "completed")
    assert mock_provider.stats()["requests"] == 3
    figures.update(jobs_stored_at_kill=stored, of=BIG_INPUT, seconds_kill_to_failed=round(cleaned_after, 1),
                   provider_requests_for_half_batch=0)


def test_a_half_stored_batch_cancelled_ends_cancelled_and_a_resubmit_cleans_it_up_without_workers(
    tmp_path, fleet_config, postgres_url, mock_provider, figures
):
    source = write_jsonl(tmp_path / "big.jsonl", chat_lines(BIG_INPUT, model="chat"))
    batch_id, stored, killed_at = kill_while_storing(fleet_config, source, postgres_url)
    cancel = run_cli("-c", str(fleet_config), "cancel", batch_id)
    assert cancel.returncode == 0, cancel.stderr.decode()

    # No worker runs; the next submit with the key finds the stale lease and cleans up itself.
    small = write_jsonl(tmp_path / "small.jsonl", chat_lines(2, model="chat"))
    again = run_cli("-c", str(fleet_config), "submit", str(small), "--idempotency-key", KEY)
    resubmitted_after = time.monotonic() - killed_at
    assert again.returncode == 0, again.stderr.decode()
    new_id = again.stdout.decode().strip()
    assert new_id != batch_id
    assert "left half-stored" in again.stderr.decode()
    [(status, key)] = query(postgres_url, "SELECT status, idempotency_key FROM batches WHERE id = :id", id=batch_id)
    assert (status, key) == ("cancelled", None)
    assert query(postgres_url, "SELECT count(*) FROM jobs WHERE batch_id = :id", id=batch_id)[0][0] == 0
    [(new_status, new_key)] = query(
        postgres_url, "SELECT status, idempotency_key FROM batches WHERE id = :id", id=new_id)
    assert (new_status, new_key) == ("in_progress", KEY)
    figures.update(jobs_stored_at_kill=stored, seconds_kill_to_resubmitted=round(resubmitted_after, 1))


class CutOnCommand:
    """A TCP proxy to Redis that forwards everything until a client sends ``command``; then it
    drops that connection and refuses every later one (Redis gone between two commands)."""

    def __init__(self, target_port: int, command: bytes):
        self._target = ("127.0.0.1", target_port)
        self._command = command
        self._cut = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and self._command in data.upper():
                    self._cut.set()
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._listener.close()


def test_submit_succeeds_with_a_warning_when_only_the_wake_message_cannot_be_sent(
    tmp_path, write_config, mock_provider, postgres_url, redis_namespace, redis_server
):
    # Redis answers submit's check (PING), then is gone when the wake message (a dramatiq
    # enqueue: EVALSHA of its Lua script) is sent.
    from redis.connection import parse_url

    proxy = CutOnCommand(int(parse_url(redis_server).get("port", 6379)), b"EVALSHA")
    settings = {"database_url": postgres_url, "namespace": redis_namespace}
    broken = write_config([("chat", openai_deployment(mock_provider))], name="broken.yaml",
                          settings={**settings, "redis_url": f"redis://127.0.0.1:{proxy.port}/0"})
    healthy = write_config([("chat", openai_deployment(mock_provider))], name="healthy.yaml",
                           settings={**settings, "redis_url": redis_server})
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(5, model="chat"))
    try:
        result = run_cli("-c", str(broken), "submit", str(source))
    finally:
        proxy.close()
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    batch_id = result.stdout.decode().strip()
    assert batch_id.startswith("batch_")
    assert "could not be sent" in stderr and "next poll" in stderr and "Traceback" not in stderr
    [(status,)] = query(postgres_url, "SELECT status FROM batches WHERE id = :id", id=batch_id)
    assert status == "in_progress"

    # No wake message was sent: workers find the batch by polling SQL.
    with WorkerFleet(healthy, 1):
        wait_for_status(postgres_url, batch_id, "completed", timeout=30)
    assert mock_provider.stats()["requests"] == 5
    status = json.loads(run_cli("-c", str(healthy), "status", batch_id, "--json").stdout)
    assert status["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
