"""The engine in this process on the in-process backends (SQLite, no Redis, no subprocess),
against the HTTP mock provider on 127.0.0.1: what it sends, records and tells its observers."""

from __future__ import annotations

import asyncio
import time

from dispatcher import Client
from dispatcher.engine.engine import Engine
from dispatcher.engine.observers import EngineObserver, LogObserver, Observers
from dispatcher.metrics import Metrics
from tests.conftest import chat_lines, openai_deployment
from tests.helpers.sql import CALLS, query


class Recorder(EngineObserver):
    def __init__(self):
        self.started: list[str] = []
        self.ended: list[tuple[str, object]] = []
        self.recorded: list[object] = []

    def call_started(self, deployment_id):
        self.started.append(deployment_id)

    def call_ended(self, deployment_id, outcome):
        self.ended.append((deployment_id, outcome))

    def outcome_recorded(self, outcome):
        self.recorded.append(outcome)


def run_engine_until_done(client: Client, batch_id: str, observer: EngineObserver | None = None,
                          timeout: float = 30, **options) -> Engine:
    if observer is not None:
        options["observers"] = Observers([LogObserver("test"), observer])
    engine = Engine(config=client.config, deployments=client.deployments, database=client.database,
                    backends=client.backends, **options)

    async def main():
        running = asyncio.create_task(engine.run())
        deadline = time.monotonic() + timeout
        while client.status(batch_id).status != "completed":
            assert time.monotonic() < deadline, client.status(batch_id)
            assert not running.done(), running.exception()
            await asyncio.sleep(0.05)
        engine.request_stop()
        await running

    asyncio.run(main())
    return engine


def make_client(write_config, sqlite_url, provider, **worker) -> Client:
    config = write_config([("chat", openai_deployment(provider))],
                          settings={"database_url": sqlite_url, "worker": worker})
    return Client(config)


def test_an_engine_runs_a_batch_once_per_job_and_its_observers_see_every_call(
    write_config, sqlite_url, mock_provider
):
    with make_client(write_config, sqlite_url, mock_provider) as client:
        batch = client.submit(chat_lines(20, model="chat"))
        recorder = Recorder()
        engine = run_engine_until_done(client, batch.batch_id, recorder)
        results = list(client.results(batch.batch_id))
    stats = mock_provider.stats()
    assert stats["requests"] == 20 and stats["duplicates"] == 0
    assert len(results) == 20
    assert recorder.started == ["chat#0"] * 20
    assert [outcome.completion is not None for _, outcome in recorder.ended] == [True] * 20
    assert sorted(o.job.custom_id for o in recorder.recorded) == sorted(f"job-{i}" for i in range(20))
    assert (engine.stats.claimed, engine.stats.finished, engine.stats.in_flight) == (20, 20, 0)
    [worker] = query(sqlite_url, "SELECT stopped_at FROM workers")
    assert worker.stopped_at is not None  # it left the fleet on the way out


class FreezeOnce(Recorder):
    """Blocks the engine's loop once, right after a call passed its lease check: what a
    SIGSTOP or a long pause at that moment does to the process."""

    def __init__(self, seconds: float):
        super().__init__()
        self._seconds = seconds

    def call_started(self, deployment_id):
        super().call_started(deployment_id)
        if len(self.started) == 1:
            time.sleep(self._seconds)


def test_a_pause_between_the_lease_check_and_the_write_sends_nothing_and_hands_the_job_back(
    write_config, sqlite_url, mock_provider, caplog
):
    # The lease window is dead_after / 2 = 0.5 s; the pause outlasts it.
    with make_client(write_config, sqlite_url, mock_provider, dead_after=1.0, heartbeat_interval=0.2,
                     concurrency=1) as client:
        batch = client.submit(chat_lines(3, model="chat"))
        recorder = FreezeOnce(0.7)
        run_engine_until_done(client, batch.batch_id, recorder)
        results = list(client.results(batch.batch_id))
    stats = mock_provider.stats()
    assert stats["requests"] == 3 and stats["duplicates"] == 0  # the paused call was not sent
    assert len(results) == 3
    assert recorder.ended[0][1] is None  # the first call ended without an outcome: not sent
    assert "the call is not sent and the job is handed back" in caplog.text
    attempts = query(sqlite_url, f"SELECT count(*) AS n FROM {CALLS} AS a")[0].n
    assert attempts == 3  # no attempt row for the call that never left


def test_the_metrics_observer_counts_what_the_provider_billed(write_config, sqlite_url, mock_provider):
    metrics = Metrics()
    with make_client(write_config, sqlite_url, mock_provider) as client:
        batch = client.submit(chat_lines(10, model="chat"))
        run_engine_until_done(client, batch.batch_id, metrics=metrics)
    billed = mock_provider.stats()["usage"]
    sample = metrics.registry.get_sample_value
    assert sample("llmd_requests_total", {"deployment": "chat#0", "outcome": "success"}) == 10
    assert sample("llmd_jobs_finished_total", {"group": "chat", "status": "succeeded"}) == 10
    assert sample("llmd_tokens_total", {"deployment": "chat#0", "kind": "prompt"}) == billed["prompt_tokens"]
    assert sample("llmd_in_flight", {"deployment": "chat#0"}) == 0
    assert sample("llmd_jobs", {"state": "queued"}) is not None  # refreshed at start
