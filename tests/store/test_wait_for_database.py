"""`db upgrade` waits for a PostgreSQL server that is still starting (docker compose), and
gives up with a clear message when it stays unreachable or the error is not one of time."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from dispatcher.errors import ServiceUnavailableError
from dispatcher.store.database import Database
from dispatcher.store.migrate import current_revision, head_revision, upgrade, wait_for_database
from tests.conftest import run_cli
from tests.helpers.tcp_proxy import TcpProxy


def closed_port() -> int:
    """A port nothing listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refusing_server_is_retried_until_the_wait_is_over():
    database = Database(f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test")
    notes: list[str] = []
    started = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailableError) as info:
            wait_for_database(database, 1.0, notes.append)
    finally:
        database.dispose()
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 3.0, elapsed
    assert "Connection refused" in str(info.value)
    assert "still refused after waiting 1 s" in str(info.value)
    assert len(notes) == 1 and "waiting up to 1 s" in notes[0]


def test_wait_zero_fails_at_once():
    database = Database(f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test")
    notes: list[str] = []
    started = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailableError) as info:
            wait_for_database(database, 0, notes.append)
    finally:
        database.dispose()
    assert time.monotonic() - started < 1.0
    assert "waiting" not in str(info.value) and notes == []


def test_a_server_that_comes_up_within_the_wait_is_migrated(postgres_server, empty_postgres_url):
    """The proxy refuses connections for 0.8 s (a server still initialising), then forwards."""
    target = urlsplit(postgres_server.replace("postgresql+psycopg", "postgresql"))
    proxy = TcpProxy(target.hostname, target.port or 5432)
    proxy.cut()
    threading.Timer(0.8, proxy.restore).start()
    url = empty_postgres_url.replace(f"{target.hostname}:{target.port or 5432}", f"127.0.0.1:{proxy.port}")
    database = Database(url)
    notes: list[str] = []
    try:
        wait_for_database(database, 10, notes.append)
        upgrade(database)
        assert current_revision(database) == head_revision(database)
    finally:
        database.dispose()
        proxy.close()
    assert len(notes) == 1


def test_an_error_that_waiting_cannot_fix_is_not_retried(postgres_server):
    """A user the server does not know: reported at once, not after the whole wait."""
    url = postgres_server.replace("://postgres@", "://no_such_role_llmd@")
    database = Database(url)
    started = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailableError) as info:
            wait_for_database(database, 30, lambda note: None)
    finally:
        database.dispose()
    assert time.monotonic() - started < 5
    assert "no_such_role_llmd" in str(info.value)


def test_db_upgrade_command_waits_then_exits_3(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n  - model_name: chat\n    litellm_params: {model: mock/echo}\n"
        f"dispatcher_settings:\n  database_url: postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x\n"
    )
    started = time.monotonic()
    result = run_cli("-c", str(config), "db", "upgrade", "--wait", "1")
    elapsed = time.monotonic() - started
    stderr = result.stderr.decode()
    assert result.returncode == 3, stderr
    assert "waiting up to 1 s for it to accept connections (--wait)" in stderr
    assert "still refused after waiting 1 s" in stderr
    assert elapsed >= 1.0
