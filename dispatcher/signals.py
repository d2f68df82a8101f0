"""Instant signals between processes: "jobs are ready in these groups" and "these batches
have ended", for requests a caller waits for (``POST /v1/chat/completions``).

Wake messages (messaging.py) go through dramatiq's queue, a fetch and a consumer thread (a
few ms; it was a 100 ms poll before wake_broker.py), and workers learn a result only when they
poll SQL: fine for bulk work, too slow for a caller holding a connection. Signals are fire-and-forget, Redis pub/sub across the fleet
or plain callbacks in one process. Losing one costs latency, never work: workers still poll
SQL, and a waiting route still looks at SQL now and then.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Callable

import orjson

from dispatcher.pubsub_listener import PubSubListener

log = logging.getLogger(__name__)

WAKE = "wake"  # items: model group names
FINISHED = "finished"  # items: batch ids
CHANNELS = (WAKE, FINISHED)

Subscriber = Callable[[list[str]], None]


class Signals:
    """In-process signals (embedded mode): a publish calls the subscribers in its own thread.

    Subscribers must be quick and thread-safe (e.g. ``loop.call_soon_threadsafe``)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = defaultdict(list)
        self._lock = threading.Lock()

    def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        _check_channel(channel)
        with self._lock:
            self._subscribers[channel].append(subscriber)
        self._started()

    def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers[channel]:
                self._subscribers[channel].remove(subscriber)

    def publish(self, channel: str, items: list[str]) -> None:
        _check_channel(channel)
        if items:
            self._deliver(channel, list(items))

    def _deliver(self, channel: str, items: list[str]) -> None:
        with self._lock:
            subscribers = list(self._subscribers[channel])
        for subscriber in subscribers:
            try:
                subscriber(items)
            except Exception:  # noqa: BLE001 - one subscriber must not stop the others
                log.exception("a %s signal subscriber failed", channel)

    def _started(self) -> None:
        """A subscriber was added (the Redis form starts listening)."""

    def close(self) -> None:
        with self._lock:
            self._subscribers.clear()


class RedisSignals(Signals):
    """Signals through Redis pub/sub, one listener thread per process (started by the first
    subscriber). A publish that fails is logged at debug level and dropped (see the module
    docstring: polling covers it)."""

    def __init__(self, url: str, namespace: str) -> None:
        super().__init__()
        import redis

        self._redis = redis
        self._client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._names = {channel: f"{namespace}:signal:{channel}" for channel in CHANNELS}
        self._channels = {name: channel for channel, name in self._names.items()}
        self._stop = threading.Event()
        self._listener: PubSubListener | None = None

    def publish(self, channel: str, items: list[str]) -> None:
        _check_channel(channel)
        if not items:
            return
        try:
            self._client.publish(self._names[channel], orjson.dumps(list(items)))
        except (self._redis.RedisError, OSError) as exc:
            log.debug("a %s signal was lost (%s); polling will find what it announced", channel, exc)

    def _started(self) -> None:
        with self._lock:
            if self._listener is None and not self._stop.is_set():
                self._listener = PubSubListener(
                    self._client, list(self._names.values()), self._on_message, name="llmd-signals"
                )
                self._listener.start()

    def _on_message(self, name: str, data: bytes) -> None:
        channel = self._channels.get(name)
        if channel is None:
            return
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.debug("ignored a malformed %s signal", channel)
            return
        self._deliver(channel, [str(item) for item in items])

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        super().close()
        self._client.close()


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise ValueError(f"unknown signal channel {channel!r}; one of {', '.join(CHANNELS)}")
