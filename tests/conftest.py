"""Shared fixtures: real Redis, real PostgreSQL, SQLite files, the mock provider, configs, CLI.

Services are found at $LLMD_TEST_REDIS_URL (default redis://127.0.0.1:6379/0) and
$LLMD_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
A missing service fails the tests that need it; set LLMD_TEST_ALLOW_SKIP=1 to skip them
instead on a laptop (never in CI: .ci/run does not set it).
Each test gets its own Redis namespace and its own PostgreSQL schema, dropped afterwards.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.mock_provider import MockProvider

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("LLMD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "LLMD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ALLOW_SKIP = os.environ.get("LLMD_TEST_ALLOW_SKIP") == "1"


def _service_missing(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); start it or set LLMD_TEST_ALLOW_SKIP=1"
    if ALLOW_SKIP:
        pytest.skip(message)
    pytest.fail(message)


# -- services ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_server() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        _service_missing(f"Redis at {REDIS_URL}", exc)
    return REDIS_URL


@pytest.fixture
def redis_namespace(redis_server):
    """A fresh key prefix; every key under it is deleted after the test."""
    import redis

    namespace = f"test-{uuid.uuid4().hex[:10]}"
    yield namespace
    client = redis.Redis.from_url(redis_server)
    for key in client.scan_iter(match=f"{namespace}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(POSTGRES_URL)
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:  # noqa: BLE001
        _service_missing(f"PostgreSQL at {POSTGRES_URL}", exc)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(empty_postgres_url):
    """A fresh schema, migrated (as `llm-dispatch db upgrade` would), dropped after the test."""
    from dispatcher.store.database import Database
    from dispatcher.store.migrate import upgrade

    database = Database(empty_postgres_url)
    upgrade(database)
    database.dispose()
    return empty_postgres_url


@pytest.fixture
def empty_postgres_url(postgres_server):
    """A URL whose search_path is a fresh, empty schema, dropped after the test."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{separator}options=-csearch_path%3D{schema}"
    with engine.connect() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'dispatch.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dispatch.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def database(database_url):
    """A migrated Database on each of ``database_url``'s two databases, disposed after."""
    from dispatcher.store.database import Database
    from dispatcher.store.migrate import upgrade

    made = Database(database_url)
    upgrade(made)
    yield made
    made.dispose()


# -- tests that run alone under pytest-xdist ------------------------------------------------

# A run started in the background by a non-interactive shell (`pytest &` in a script) inherits
# SIGINT ignored, as POSIX says, and would pass that on to every CLI process a test starts: the
# Ctrl-C tests would fail for a reason of the launcher's. Tests run as from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _sigint_state() -> tuple[object, bool]:
    return signal.getsignal(signal.SIGINT), signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])


@pytest.fixture(autouse=True)
def _sigint_left_alone():
    """A test that leaves Ctrl-C ignored or blocked in this process would pass that on to every
    CLI process started after it here (an ignored or blocked signal is inherited), and a later
    Ctrl-C test would fail for no reason of its own: name the test that did it instead."""
    before = _sigint_state()
    yield
    after = _sigint_state()
    if after != before:
        signal.signal(signal.SIGINT, before[0])
        signal.pthread_sigmask(signal.SIG_UNBLOCK if not before[1] else signal.SIG_BLOCK, [signal.SIGINT])
        pytest.fail(f"this test changed SIGINT in the test process: {before} -> {after}")


@pytest.fixture(autouse=True)
def _alone_if_marked(request, tmp_path_factory):
    """Under pytest-xdist, a test marked ``alone`` runs while no other test does.

    Every test holds a shared lock on a file all workers see; an ``alone`` test takes it
    exclusively. The turnstile, held by the ``alone`` test while it waits, stops new tests
    from starting meanwhile (otherwise the other workers' back-to-back tests could keep the
    shared lock held for ever).
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    root = tmp_path_factory.getbasetemp().parent  # shared by the workers of one run
    alone = request.node.get_closest_marker("alone") is not None
    with open(root / "alone.turnstile", "a") as turnstile, open(root / "alone.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        yield


# -- the mock provider ---------------------------------------------------------------------

@pytest.fixture
def mock_provider():
    """The project's HTTP mock provider on a free port (no latency)."""
    with MockProvider() as provider:
        yield provider


@pytest.fixture
def start_mock_provider():
    """Factory: start mock providers with options; all are stopped after the test."""
    started: list[MockProvider] = []

    def start(**options: Any) -> MockProvider:
        provider = MockProvider(**options)
        provider.start()
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.stop()


# -- configs and the CLI -------------------------------------------------------------------

FAST_WORKER = {
    "heartbeat_interval": 0.5,
    "dead_after": 3.0,
    "poll_interval": 0.5,
    "shutdown_grace": 5.0,
}


@pytest.fixture
def write_config(tmp_path):
    """Factory: write a config file; returns its path.

    ``deployments`` is a list of (group, litellm_params) pairs; ``router`` and ``settings``
    are merged into router_settings and dispatcher_settings.
    """

    def write(
        deployments: list[tuple[str, dict]],
        *,
        router: dict | None = None,
        settings: dict | None = None,
        name: str = "config.yaml",
    ) -> Path:
        dispatcher_settings = {"worker": dict(FAST_WORKER)}
        for key, value in (settings or {}).items():
            if key == "worker":
                dispatcher_settings["worker"].update(value)
            else:
                dispatcher_settings[key] = value
        document = {
            "model_list": [
                {"model_name": group, "litellm_params": params} for group, params in deployments
            ],
            "router_settings": {"num_retries": 1, "retry_after": 0, **(router or {})},
            "dispatcher_settings": dispatcher_settings,
        }
        path = tmp_path / name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    return write


def openai_deployment(provider: MockProvider, **extra: Any) -> dict:
    """litellm_params for an openai/ deployment served by the mock provider."""
    return {"model": "openai/mock-gpt", "api_base": provider.base_url, "api_key": "sk-test-key-0000", **extra}


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_DISPATCH_")}
    env.update(extra)
    env["PYTHONPATH"] = str(REPO)
    return env


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``llm-dispatch`` as a user would (a fresh process)."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=env or cli_env(),
        input=input,
        capture_output=True,
        timeout=timeout,
    )


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    import json

    with path.open("w") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def chat_lines(count: int, *, prefix: str = "job", model: str | None = None, **body: Any) -> list[dict]:
    """Short-form request lines with unique prompts (so the provider can spot duplicates)."""
    lines = []
    for i in range(count):
        line = {
            "custom_id": f"{prefix}-{i}",
            "messages": [{"role": "user", "content": f"{prefix} prompt number {i}"}],
            "max_tokens": 16,
            **body,
        }
        if model:
            line["model"] = model
        lines.append(line)
    return lines


@pytest.fixture
def figures(request):
    """Record measured figures of a test; written as JSON lines to $LLMD_FIGURES when set."""
    recorded: dict[str, Any] = {}
    yield recorded
    path = os.environ.get("LLMD_FIGURES")
    if path and recorded:
        import json

        with open(path, "a") as handle:
            handle.write(json.dumps({"test": request.node.name, **recorded}) + "\n")
