"""Worker metrics: the fleet-wide gauges are there from the first scrape."""

from __future__ import annotations

import re

import httpx

from dispatcher import Client
from dispatcher.metrics import Metrics
from tests.conftest import chat_lines


def test_job_and_queue_gauges_are_filled_when_the_worker_starts(write_config, sqlite_url):
    config = write_config([("chat", {"model": "mock/echo"}), ("other", {"model": "mock/echo"})],
                          settings={"database_url": sqlite_url})
    client = Client(config)
    metrics = Metrics()
    try:
        client.submit(chat_lines(7), model="chat", priority=3)
        port = metrics.serve(0)
        # Serving only "other", the worker leaves the 7 "chat" jobs queued: the figures hold still.
        node = client.start_worker(groups=["other"], metrics=metrics)
        try:
            scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        finally:
            node.stop()
    finally:
        metrics.close()
        client.close()
    assert re.search(r'^llmd_jobs\{state="queued"\} 7\.0$', scraped, re.M), scraped
    assert re.search(r'^llmd_jobs\{state="succeeded"\} 0\.0$', scraped, re.M), scraped
    assert re.search(r'^llmd_queue_depth\{group="chat",priority="3"\} 7\.0$', scraped, re.M), scraped
