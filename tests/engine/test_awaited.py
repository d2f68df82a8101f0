"""Awaited requests (client/awaited.py): stored many per transaction as one-line batches of
kind ``completion``; the engine writes their results at once (not after the result flush
interval) and announces them on the FINISHED signal. In this process, on SQLite, against the
HTTP mock provider on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dispatcher.client.awaited import AWAITED_KIND
from dispatcher.engine.engine import Engine
from dispatcher.errors import InputError
from dispatcher.signals import FINISHED
from tests.conftest import chat_lines
from tests.engine.test_engine import make_client
from tests.helpers.sql import query

SLOW_FLUSH_S = 5.0  # a batch job's result waits this long for company; an awaited one must not


def body(text: str) -> dict:
    return {"model": "chat", "messages": [{"role": "user", "content": text}]}


def test_awaited_completions_are_written_at_once_and_announced(write_config, sqlite_url, mock_provider):
    with make_client(write_config, sqlite_url, mock_provider, result_flush_interval=SLOW_FLUSH_S) as client:
        requests = [client.prepare_completion(body(f"question {i}"), priority=0) for i in range(3)]
        announced: dict[str, float] = {}
        all_announced = threading.Event()

        def on_finished(batch_ids: list[str]) -> None:
            for batch_id in batch_ids:
                announced.setdefault(batch_id, time.monotonic())
            if len(announced) == len(requests):
                all_announced.set()

        client.backends.signals.subscribe(FINISHED, on_finished)
        client.store_completions(requests)  # one transaction for the three
        bulk = client.submit(chat_lines(2, model="chat"))
        engine = Engine(config=client.config, deployments=client.deployments, database=client.database,
                        backends=client.backends)

        async def main() -> float:
            running = asyncio.create_task(engine.run())
            started = time.monotonic()
            while not all_announced.is_set():
                assert time.monotonic() - started < SLOW_FLUSH_S - 1, f"announced only {announced}"
                assert not running.done(), running.exception()
                await asyncio.sleep(0.01)
            elapsed = time.monotonic() - started
            engine.request_stop()
            await running
            return elapsed

        elapsed = asyncio.run(main())
        rows = client.completion_results([r.batch_id for r in requests])
        kinds = query(sqlite_url, "SELECT id, kind, total, status, owner FROM batches ORDER BY created_at")
        listed = [info.id for info in client.list_batches(kind="batch")]

    assert set(announced) == {r.batch_id for r in requests}  # the bulk batch is not announced
    assert elapsed < SLOW_FLUSH_S - 1  # written without waiting for the flush interval
    assert {rows[r.batch_id].status for r in requests} == {"succeeded"}
    assert "Mock reply to: question 1" in rows[requests[1].batch_id].response
    by_id = {row.id: row for row in kinds}
    assert [by_id[r.batch_id].kind for r in requests] == [AWAITED_KIND] * 3
    assert all(by_id[r.batch_id].total == 1 and by_id[r.batch_id].status == "completed" for r in requests)
    assert by_id[bulk.batch_id].kind == "batch"
    assert listed == [bulk.batch_id]  # completions are not batches to a list of batches
    assert mock_provider.stats()["requests"] == 5 and mock_provider.stats()["duplicates"] == 0


def test_a_bad_completion_body_is_refused_with_its_problem(write_config, sqlite_url, mock_provider):
    with make_client(write_config, sqlite_url, mock_provider) as client:
        with pytest.raises(InputError, match="messages"):
            client.prepare_completion({"model": "chat", "messages": "not a list"}, priority=5)
        assert client.list_batches() == []  # nothing stored
