"""One dramatiq consumer per client's broker, however many in-process workers it starts."""

from __future__ import annotations

import logging

import pytest

from dispatcher import Client
from tests.conftest import chat_lines


@pytest.fixture
def client_factory(write_config, sqlite_url):
    clients: list[Client] = []

    def make(**settings) -> Client:
        config = write_config([("chat", {"model": "mock/echo"})],
                              settings={"database_url": sqlite_url, **settings})
        clients.append(Client(config))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def dramatiq_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("dramatiq") and r.levelno >= logging.WARNING]


def test_complete_then_run_on_one_embedded_client(client_factory, caplog):
    client = client_factory()
    caplog.set_level(logging.WARNING)
    assert client.complete("hello", model="chat")["choices"][0]["message"]["content"] == "Mock reply to: hello"
    info = client.run(chat_lines(5), model="chat")
    assert (info.status, info.succeeded) == ("completed", 5)
    assert dramatiq_warnings(caplog) == []


def test_two_runs_on_one_distributed_client(client_factory, redis_server, redis_namespace, caplog):
    client = client_factory(redis_url=redis_server, namespace=redis_namespace)
    caplog.set_level(logging.WARNING)
    for prefix in ("first", "second"):
        info = client.run(chat_lines(5, prefix=prefix), model="chat")
        assert (info.status, info.succeeded) == ("completed", 5)
    assert dramatiq_warnings(caplog) == []
