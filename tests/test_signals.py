"""Instant signals (dispatcher/signals.py): in-process callbacks, and Redis pub/sub between
processes' clients on a real Redis; a lost signal never raises."""

from __future__ import annotations

import threading
import time

import pytest

from dispatcher.signals import FINISHED, WAKE, RedisSignals, Signals


class Inbox:
    def __init__(self):
        self.items: list[list[str]] = []
        self.arrived = threading.Event()

    def __call__(self, items: list[str]) -> None:
        self.items.append(items)
        self.arrived.set()


def test_in_process_signals_reach_the_subscribers_of_their_channel_only():
    signals = Signals()
    woken, finished = Inbox(), Inbox()
    signals.subscribe(WAKE, woken)
    signals.subscribe(FINISHED, finished)
    signals.publish(FINISHED, ["batch_1", "batch_2"])
    signals.publish(WAKE, [])  # nothing to say: nothing sent
    assert finished.items == [["batch_1", "batch_2"]] and woken.items == []
    signals.unsubscribe(FINISHED, finished)
    signals.publish(FINISHED, ["batch_3"])
    assert finished.items == [["batch_1", "batch_2"]]
    with pytest.raises(ValueError, match="unknown signal channel"):
        signals.publish("elsewhere", ["x"])


def test_a_failing_subscriber_does_not_stop_the_others():
    signals = Signals()
    inbox = Inbox()
    signals.subscribe(WAKE, lambda items: 1 / 0)
    signals.subscribe(WAKE, inbox)
    signals.publish(WAKE, ["chat"])
    assert inbox.items == [["chat"]]


def test_redis_signals_go_from_one_client_to_another(redis_server, redis_namespace):
    sender, receiver = RedisSignals(redis_server, redis_namespace), RedisSignals(redis_server, redis_namespace)
    other_fleet = RedisSignals(redis_server, redis_namespace + "-other")
    inbox, stranger = Inbox(), Inbox()
    try:
        receiver.subscribe(FINISHED, inbox)
        other_fleet.subscribe(FINISHED, stranger)
        deadline = time.monotonic() + 5
        # The listener subscribes on its thread: send until it hears (a signal may be lost).
        while not inbox.arrived.wait(0.05):
            assert time.monotonic() < deadline, "no signal arrived within 5 s"
            sender.publish(FINISHED, ["batch_a", "batch b"])
        assert inbox.items[0] == ["batch_a", "batch b"]
        assert stranger.items == []  # another namespace is another fleet
    finally:
        for signals in (sender, receiver, other_fleet):
            signals.close()


def test_publishing_without_redis_loses_the_signal_quietly():
    signals = RedisSignals("redis://127.0.0.1:1/0", "nowhere")
    try:
        signals.publish(WAKE, ["chat"])  # no exception: polling covers a lost signal
    finally:
        signals.close()


def test_an_idle_listener_sleeps_on_its_socket_and_stops_at_once(redis_server, redis_namespace):
    signals = RedisSignals(redis_server, redis_namespace)
    inbox = Inbox()
    signals.subscribe(WAKE, inbox)
    listener = [t for t in threading.enumerate() if t.name == "llmd-signals"][-1]
    time.sleep(0.5)  # subscribed and idle
    woke = _voluntary_switches(listener.native_id)
    time.sleep(2.0)
    # It waited on its socket: it did not wake to look for a stop (it did 4 times a second).
    assert _voluntary_switches(listener.native_id) - woke <= 1
    started = time.monotonic()
    signals.close()  # a message on its own stop channel ends the wait
    assert time.monotonic() - started < 1.0 and not listener.is_alive()


def _voluntary_switches(thread_id: int) -> int:
    status = open(f"/proc/self/task/{thread_id}/status").read()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])
