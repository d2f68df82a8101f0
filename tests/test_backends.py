"""The backend bundle: one body of tests for Redis (fleet) and this process (embedded)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from dispatcher.backends import LocalBackends, RedisBackends, build_backends
from dispatcher.config.schema import DispatcherSettings
from dispatcher.errors import ServiceUnavailableError
from dispatcher.limits.backend import Reservation
from dispatcher.limits.spec import LimitSpec
from dispatcher.routing.stats import RoutingStats
from dispatcher.store.database import Database
from dispatcher.store.migrate import ensure_schema

LIMIT = LimitSpec("k", 600, None, 0.1, 0.0)


@pytest.fixture(params=["local", "redis"])
def backends(request, sqlite_url):
    if request.param == "local":
        settings = DispatcherSettings(database_url=sqlite_url)
    else:
        settings = DispatcherSettings(
            database_url=sqlite_url,
            redis_url=request.getfixturevalue("redis_server"),
            namespace=request.getfixturevalue("redis_namespace"),
        )
    made = build_backends(settings)
    yield made
    made.close()


def test_redis_url_chooses_the_backends(sqlite_url, redis_server):
    local = build_backends(DispatcherSettings(database_url=sqlite_url))
    fleet = build_backends(DispatcherSettings(database_url=sqlite_url, redis_url=redis_server))
    assert isinstance(local, LocalBackends) and local.embedded
    assert isinstance(fleet, RedisBackends) and not fleet.embedded


def test_wake_messages_reach_every_listener(backends):
    backends.check()
    heard: list[str] = []
    arrived = threading.Event()

    def listen(group: str) -> None:
        heard.append(group)
        if len(heard) == 3:
            arrived.set()

    backends.messaging.add_listener(listen)
    try:
        backends.messaging.notify(["chat"], copies=2)
        backends.messaging.notify(["other"])
        assert arrived.wait(10), heard
    finally:
        backends.messaging.remove_listener(listen)
    assert sorted(heard) == ["chat", "chat", "other"]


def test_engine_state_books_caches_and_exchanges_routing_numbers(backends, sqlite_url):
    database = Database(sqlite_url)
    ensure_schema(database)

    async def scenario():
        loop = asyncio.get_running_loop()
        state = backends.engine_state(
            worker_id="w1", deployment_ids=["d1"], database=database,
            run_in_thread=lambda fn, *args: loop.run_in_executor(None, fn, *args),
        )
        try:
            booked = await state.limits.reserve([LIMIT], 3, 10, 0.5)
            await state.cache.put("key", b'{"answer": 1}', 60)
            cached = await state.cache.get("key")
            stats = RoutingStats()
            stats.call_started("d1")
            await state.stats.sync(stats)
            live = await asyncio.to_thread(backends.live_use, {"d1": LIMIT})
        finally:
            await state.aclose()
        return booked, cached, live

    try:
        booked, cached, live = asyncio.run(scenario())
    finally:
        database.dispose()
    assert isinstance(booked, Reservation) and len(booked.send_times) == 3
    assert cached == b'{"answer": 1}'
    if backends.embedded:
        assert live == {}  # nothing outside this process to read
    else:
        usage, in_flight = live["d1"]
        # What the fleet booked (the schedule runs ~0.3 s ahead) and what w1 published.
        assert usage.backlog_s > 0.1 and in_flight == 1, live


def test_an_unreachable_redis_is_named_without_its_password(sqlite_url):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://:hunter2@127.0.0.1:{port}/0"
    backends = build_backends(DispatcherSettings(database_url=sqlite_url, redis_url=url))
    started = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailableError) as raised:
            backends.check()
        with pytest.raises(ServiceUnavailableError):
            backends.messaging.notify(["chat"])
    finally:
        backends.close()
    assert f"127.0.0.1:{port}" in str(raised.value) and "hunter2" not in str(raised.value)
    assert raised.value.exit_code == 3
    assert time.monotonic() - started < 10
