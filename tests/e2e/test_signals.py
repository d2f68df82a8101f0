"""Stopping `llm-dispatch worker --processes 2` by signal, the ways a terminal or a process
manager sends it: one signal lets the calls in flight finish, a second separate Ctrl-C
abandons them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from dispatcher import Client
from tests.conftest import chat_lines, cli_env, openai_deployment
from tests.helpers.sql import CALLS

# Alone: a terminal's Ctrl-C reaches a worker both directly (SIGINT) and through the
# supervisor (SIGTERM). Under the load of parallel tests a worker once handled the forwarded
# SIGTERM first, read the group's SIGINT as a second Ctrl-C and abandoned its calls.
pytestmark = [pytest.mark.slow, pytest.mark.alone]

PROCESSES = 2
SLOTS = 5  # calls in flight per process
JOBS = PROCESSES * SLOTS  # every job is in flight when the signal comes


@pytest.fixture
def signal_config(postgres_url, redis_server, redis_namespace, write_config):
    def make(provider):
        return write_config(
            [("chat", openai_deployment(provider))],
            settings={"database_url": postgres_url, "redis_url": redis_server, "namespace": redis_namespace,
                      "worker": {"concurrency": SLOTS, "shutdown_grace": 30}},
        )
    return make


def start_fleet(config, tmp_path) -> subprocess.Popen:
    """The supervisor in a process group of its own, like a shell job in a terminal."""
    with (tmp_path / "worker.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "-c", str(config), "worker", "--processes", str(PROCESSES)],
            stdout=log, stderr=subprocess.STDOUT, env=cli_env(), start_new_session=True,
        )


def wait_until(condition, fleet: subprocess.Popen, tmp_path, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if fleet.poll() is not None or time.monotonic() > deadline:
            stop(fleet)
            raise AssertionError(f"{what} did not happen:\n{read_log(tmp_path)}")
        time.sleep(0.05)


def start_busy_fleet(config, provider, tmp_path) -> tuple[subprocess.Popen, str]:
    """Both worker processes running, every job's call in flight; returns (fleet, batch id).

    The jobs are submitted once both processes serve, so each takes its share (one process
    starting late would otherwise take every job while the other was still loading).
    """
    fleet = start_fleet(config, tmp_path)
    wait_until(lambda: read_log(tmp_path).count(" serving ") == PROCESSES, fleet, tmp_path,
               "both worker processes serving")
    with Client(config) as client:
        batch_id = client.submit(chat_lines(JOBS), model="chat").batch_id
    wait_until(lambda: provider.stats()["in_flight"] == JOBS, fleet, tmp_path, "every call in flight")
    return fleet, batch_id


def stop(fleet: subprocess.Popen) -> None:
    if fleet.poll() is None:
        os.killpg(fleet.pid, signal.SIGKILL)
        fleet.wait()


def read_log(tmp_path) -> str:
    return (tmp_path / "worker.log").read_text(errors="replace")


def attempt_outcomes(database_url: str) -> list[str]:
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        outcomes = connection.execute(sa.text(f"SELECT outcome FROM {CALLS} AS a")).scalars().all()
    engine.dispose()
    return list(outcomes)


def send(fleet: subprocess.Popen, how: str) -> None:
    if how == "ctrl-c":  # a terminal signals the whole foreground process group
        os.killpg(fleet.pid, signal.SIGINT)
    elif how == "sigint-to-supervisor":
        fleet.send_signal(signal.SIGINT)
    else:  # systemd's default KillMode signals every process of the service
        os.killpg(fleet.pid, signal.SIGTERM)


@pytest.mark.parametrize("how", ["ctrl-c", "sigint-to-supervisor", "sigterm-to-group"])
def test_one_signal_lets_every_call_in_flight_finish(tmp_path, postgres_url, start_mock_provider,
                                                     signal_config, how):
    provider = start_mock_provider(latency_ms=2000)
    config = signal_config(provider)
    fleet, batch_id = start_busy_fleet(config, provider, tmp_path)
    try:
        send(fleet, how)
        code = fleet.wait(30)
    finally:
        stop(fleet)
    log = read_log(tmp_path)
    assert code == 0, log
    outcomes = attempt_outcomes(postgres_url)
    assert "abandoned" not in outcomes, log
    with Client(config) as client:
        batch = client.status(batch_id)
    assert (batch.status, batch.succeeded, batch.failed) == ("completed", JOBS, 0)
    stats = provider.stats()
    assert stats["requests"] == len(outcomes) == JOBS and stats["duplicates"] == 0


def test_a_second_separate_ctrl_c_abandons_the_calls_in_flight(tmp_path, postgres_url, start_mock_provider,
                                                               signal_config):
    provider = start_mock_provider(latency_ms=20_000)
    config = signal_config(provider)
    fleet, _ = start_busy_fleet(config, provider, tmp_path)
    try:
        os.killpg(fleet.pid, signal.SIGINT)
        time.sleep(1.0)  # a person pressing Ctrl-C again
        os.killpg(fleet.pid, signal.SIGINT)
        started = time.monotonic()
        code = fleet.wait(15)
        took = time.monotonic() - started
    finally:
        stop(fleet)
    log = read_log(tmp_path)
    assert code == 0, log
    assert took < 10, f"took {took:.1f}s to stop: the calls were not abandoned\n{log}"
    assert attempt_outcomes(postgres_url).count("abandoned") == JOBS, log
