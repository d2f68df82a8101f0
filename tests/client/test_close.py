"""``Client.close`` stops the in-process workers the client started, so none is left running
(and housekeeping) until the interpreter exits."""

from __future__ import annotations

from dispatcher import Client


def test_close_stops_the_workers_this_client_started(write_config, sqlite_url):
    config = write_config([("chat", {"model": "mock/echo"})], settings={"database_url": sqlite_url})
    client = Client(config)
    started, stopped_by_owner = client.start_worker(), client.start_worker()
    stopped_by_owner.stop(grace=0)
    client.close()
    assert started.wait(0) and stopped_by_owner.wait(0)
    assert started.error is None
