"""The dramatiq broker (Redis, or in-process for embedded mode) and our actors on it.

Dramatiq binds an actor to a broker when the actor is declared. Instead of a global broker
that must be set before any actor module is imported, ``Messaging`` declares our actors on
the broker it builds, so embedded and distributed modes (and tests with several brokers in
one process) cannot pick up the wrong one.

What travels through dramatiq is a *wake* message naming a model group: "jobs may be ready
in this group". Jobs themselves stay in SQL, claimed in priority order when a worker has a
free slot (see docs/architecture.md). Duplicate or lost wake messages are harmless: workers
also poll SQL when idle.

One dramatiq consumer per broker, shared by every in-process worker (engine) listening to
it: a dramatiq ``Worker`` adds a middleware to its broker when it starts and never removes
it, so a consumer per engine would stack them (dramatiq warns "adding a middleware of the
same type twice", e.g. for ``Client.complete`` then ``Client.run``).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from dispatcher.config.schema import DispatcherSettings
from dispatcher.config.secrets import redact_url
from dispatcher.errors import ServiceUnavailableError

log = logging.getLogger(__name__)

WAKE_QUEUE = "wake"
WAKE_ACTOR = "wake_group"
# A dead worker holds few unacked wake messages (they are acked at once) and losing them
# costs nothing, so dramatiq's own redelivery can stay slow; our SQL leases handle jobs.
HEARTBEAT_TIMEOUT_MS = 30_000
# Wake messages are handled in microseconds; two threads are plenty.
CONSUMER_THREADS = 2
# How long an idle dramatiq consumer waits between looks at Redis (ms): bounds wake latency.
CONSUMER_IDLE_TIMEOUT_MS = 100

Listener = Callable[[str], None]


class Messaging:
    """A broker with our actors declared on it, and the listeners wake messages reach."""

    def __init__(self, settings: DispatcherSettings):
        self.redis_url = settings.redis_url
        self.embedded = not settings.redis_url
        if self.embedded:
            self.broker: dramatiq.Broker = StubBroker(middleware=[])
        else:
            self.broker = RedisBroker(
                url=settings.redis_url,
                namespace=f"{settings.namespace}-dramatiq",
                middleware=[],
                heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
            )
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._consumer: dramatiq.Worker | None = None
        self._consumer_middleware: list[dramatiq.Middleware] = []
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
        before = list(self.broker.middleware)
        self._consumer = dramatiq.Worker(
            self.broker, worker_threads=CONSUMER_THREADS, worker_timeout=CONSUMER_IDLE_TIMEOUT_MS
        )
        self._consumer.start()
        self._consumer_middleware = [m for m in self.broker.middleware if m not in before]

    def _stop_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        consumer.stop(timeout=2000)
        # dramatiq leaves the stopped worker's middleware on the broker; the next consumer
        # adds its own, so take this one off.
        for middleware in self._consumer_middleware:
            self.broker.middleware.remove(middleware)
        self._consumer_middleware = []

    def check(self) -> None:
        """Raise ServiceUnavailableError naming the URL if Redis does not answer."""
        if self.embedded:
            return
        try:
            self.broker.client.ping()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise ServiceUnavailableError(
                f"cannot reach Redis at {redact_url(self.redis_url)}: {exc}"
            ) from None

    def notify(self, groups: Iterable[str], copies: int = 1) -> None:
        """Send wake messages for these groups (``copies`` each, to wake several workers)."""
        try:
            for group in groups:
                for _ in range(max(1, copies)):
                    self.wake.send(group)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise ServiceUnavailableError(
                f"cannot reach Redis at {redact_url(self.redis_url)}: {exc}"
            ) from None

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
