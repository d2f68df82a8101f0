"""Wake messages: a dramatiq broker (Redis, or in-process) with our one actor declared on it.

What travels through dramatiq is a *wake* message naming a model group: "jobs may be ready
in this group". Jobs themselves stay in SQL, claimed in priority order when a worker has a
free slot (see docs/architecture.md). Duplicate or lost wake messages are harmless: workers
also poll SQL when idle.

Dramatiq binds an actor to a broker when the actor is declared. Instead of a global broker
that must be set before any actor module is imported, ``Messaging`` declares the actor on the
broker it is given, so embedded and distributed modes (and tests with several brokers in one
process) cannot pick up the wrong one. Which broker is chosen is decided in
``dispatcher.backends``, nowhere else.

One consumer per broker, shared by every in-process worker (engine) listening to it: a
``WakeConsumer`` thread (``dispatcher/wake_consumer.py``) that fetches wake messages and runs
their actor, instead of dramatiq's ``Worker`` and its threads that wake four times a second.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable

import dramatiq
import redis

from dispatcher.config.secrets import redact_url
from dispatcher.errors import RedisUnavailable, ServiceUnavailableError
from dispatcher.wake_broker import DoorbellRedisBroker
from dispatcher.wake_consumer import WakeConsumer

log = logging.getLogger(__name__)

WAKE_QUEUE = "wake"
WAKE_ACTOR = "wake_group"
# dramatiq's Redis broker requeues the unacked messages of a consumer that stopped
# heartbeating after this long; wake messages are acked at once and losing them costs nothing.
HEARTBEAT_TIMEOUT_MS = 30_000
# The in-process consumer's longest wait (stopping takes up to this long). Redis consumers
# wait for the doorbell instead, up to its IDLE_FETCH_S (wake_broker.py), and stop at once.
CONSUMER_TIMEOUT_MS = 250

Listener = Callable[[str], None]


class Messaging:
    """A broker with the wake actor declared on it, and the listeners wake messages reach.

    Given a ``StubBroker`` it is the in-process form (embedded mode): nothing to reach, no
    error to map. ``RedisMessaging`` adds what a broker across the network needs.
    """

    def __init__(self, broker: dramatiq.Broker):
        self.broker = broker
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._consumer: WakeConsumer | None = None
        self.wake = dramatiq.actor(
            self._on_wake,
            broker=self.broker,
            actor_name=WAKE_ACTOR,
            queue_name=WAKE_QUEUE,
        )

    def _on_wake(self, group: str) -> None:
        for listener in list(self._listeners):
            listener(group)

    def add_listener(self, listener: Listener) -> None:
        """Deliver wake messages to ``listener``; the first listener starts the consumer."""
        with self._lock:
            self._listeners.append(listener)
            if self._consumer is None:
                self._start_consumer()

    def remove_listener(self, listener: Listener) -> None:
        """Stop delivering to ``listener``; the last one stops the consumer, so a client that
        no longer runs a worker does not take wake messages away from the fleet."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            if not self._listeners and self._consumer is not None:
                self._stop_consumer()

    def _start_consumer(self) -> None:
        self._consumer = WakeConsumer(self.broker, WAKE_QUEUE, timeout_ms=CONSUMER_TIMEOUT_MS)
        self._consumer.start()

    def _stop_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        consumer.stop(timeout=2.0)

    def check(self) -> None:
        """Raise ServiceUnavailableError if the broker cannot be reached (in-process: never)."""

    def notify(self, groups: Iterable[str], copies: int = 1) -> None:
        """Send wake messages for these groups (``copies`` each, to wake several workers)."""
        for group in groups:
            for _ in range(max(1, copies)):
                self.wake.send(group)

    def notify_quietly(self, groups: Iterable[str]) -> None:
        """Like ``notify`` but only logs failures (workers' polling will find the jobs)."""
        try:
            self.notify(groups)
        except ServiceUnavailableError as exc:
            log.warning("%s; workers will find the jobs on their next poll", exc)

    def close(self) -> None:
        with self._lock:
            self._listeners.clear()
            if self._consumer is not None:
                self._stop_consumer()
        self.broker.close()


class RedisMessaging(Messaging):
    """Wake messages through Redis, shared by the fleet; a Redis that cannot be reached
    raises RedisUnavailable naming the URL (without its password), mapped here at its edge."""

    def __init__(self, url: str, namespace: str):
        self.url = url
        super().__init__(DoorbellRedisBroker(
            url=url,
            namespace=f"{namespace}-dramatiq",
            middleware=[],
            heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
            doorbell_channel=f"{namespace}-dramatiq:doorbell",
        ))

    def _start_consumer(self) -> None:
        self.broker.doorbell.start()
        super()._start_consumer()

    def _stop_consumer(self) -> None:
        self._consumer.request_stop()
        self.broker.doorbell.stop()  # its waiting consumer returns and sees its stop
        super()._stop_consumer()

    def _unreachable(self, exc: Exception) -> RedisUnavailable:
        return RedisUnavailable(f"cannot reach Redis at {redact_url(self.url)}: {exc}")

    def check(self) -> None:
        try:
            self.broker.client.ping()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise self._unreachable(exc) from None

    def notify(self, groups: Iterable[str], copies: int = 1) -> None:
        try:
            super().notify(groups, copies)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise self._unreachable(exc) from None
