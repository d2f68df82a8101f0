"""A dramatiq RedisBroker whose idle consumers wait on a doorbell instead of polling Redis.

Dramatiq's Redis consumer looks at its queue every ``worker_timeout`` ms while the queue is
empty: a Lua script of three commands each time, per queue (its delay queue too). An idle
worker spent most of its Redis traffic and much of its CPU on that (about 80 commands/s).
Here every enqueue also publishes the queue's name on a pub/sub channel, the doorbell; an
idle consumer fetches once, then waits for the doorbell (a blocking read on a subscribed
connection: no commands) for up to ``IDLE_FETCH_S`` before it fetches again. The wait
starts from the doorbell's count read before the fetch, so a ring between the fetch and
the wait is not missed, and the wake-up is faster than the 100 ms poll it replaces.

A lost ring (the subscription dropped, a publisher without a doorbell) costs latency, never
work: consumers fetch every ``IDLE_FETCH_S`` anyway, poll at the old pace while the
doorbell is not subscribed, and workers poll SQL as well.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from dispatcher.pubsub_listener import PubSubListener

log = logging.getLogger(__name__)

# An idle consumer's longest wait between fetches. Each fetch is also dramatiq's heartbeat
# for this consumer: keep it well under the broker's heartbeat_timeout.
IDLE_FETCH_S = 10.0
# Without the doorbell (not subscribed yet, or Redis lost), an idle consumer looks this often
# (ms), as dramatiq's does with a worker_timeout of 100 ms.
UNSUBSCRIBED_POLL_MS = 100


class Doorbell:
    """Counts rings per queue name, heard on a Redis pub/sub channel by one thread."""

    def __init__(self, client: redis.Redis, channel: str):
        self._client = client
        self.channel = channel
        self._rings: dict[str, int] = {}
        self._rung_all = 0  # rings for every queue (after each subscribe)
        self._changed = threading.Condition()
        self._listener: PubSubListener | None = None
        self.listening = False  # subscribed: waits may be long

    def start(self) -> None:
        if self._listener is None:
            self._listener = PubSubListener(
                self._client, [self.channel], self._heard, name="llmd-doorbell",
                on_subscribed=self._subscribed, on_lost=self._lost,
            )
            self._listener.start()

    def stop(self) -> None:
        """Stop listening; waiters return now and wait only briefly from then on (a stopping
        consumer must notice its stop soon)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        self.listening = False
        self._ring_all()

    def rings(self, queue_name: str) -> int:
        return self._rings.get(queue_name, 0) + self._rung_all

    def wait(self, queue_name: str, seen: int, fallback_s: float, *, idle: bool = True) -> None:
        """Until ``queue_name`` is rung after ``seen`` rings, or the longest idle wait; only
        ``fallback_s`` while not subscribed (a ring may be missed then) or when not ``idle``."""
        timeout = IDLE_FETCH_S if self.listening and idle else fallback_s
        with self._changed:
            self._changed.wait_for(lambda: self.rings(queue_name) != seen, timeout)

    def _ring(self, queue_name: str) -> None:
        with self._changed:
            self._rings[queue_name] = self._rings.get(queue_name, 0) + 1
            self._changed.notify_all()

    def _ring_all(self) -> None:
        """After (re)subscribing: rings may have been missed, so every consumer looks once."""
        with self._changed:
            self._rung_all += 1
            self._changed.notify_all()

    def _heard(self, _channel: str, queue_name: bytes) -> None:
        self._ring(queue_name.decode())

    def _subscribed(self) -> None:
        self.listening = True
        self._ring_all()

    def _lost(self) -> None:
        self.listening = False
        self._ring_all()  # long waits end: consumers poll until it is back


class DoorbellRedisBroker(RedisBroker):
    """RedisBroker that rings ``doorbell`` on every enqueue; its consumers wait on it."""

    def __init__(self, *, doorbell_channel: str, **options):
        super().__init__(**options)
        self.doorbell = Doorbell(self.client, doorbell_channel)

    @property
    def consumer_class(self):
        return _DoorbellConsumer

    def enqueue(self, message: Message, *, delay: Optional[int] = None) -> Message:
        enqueued = super().enqueue(message, delay=delay)
        self.client.publish(self.doorbell.channel, enqueued.queue_name)
        return enqueued


class _DoorbellConsumer(_RedisConsumer):
    """dramatiq 2.x's Redis consumer (``_RedisConsumer.__next__``) with its idle sleep
    replaced by a wait on the broker's doorbell."""

    def __next__(self):
        doorbell = self.broker.doorbell
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:  # dramatiq #266: skipped there too
                        continue
                    self.misses = 0
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                seen = doorbell.rings(self.queue_name)  # before the fetch: see rings during it
                fetched = self.outstanding_message_count < self.prefetch
                if fetched:
                    self.message_cache = self.broker.do_fetch(
                        self.queue_name, self.prefetch - self.outstanding_message_count,
                    )
                if not self.message_cache:
                    # Full (messages in hand): look again soon. Empty: wait for the doorbell.
                    self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=UNSUBSCRIBED_POLL_MS)
                    doorbell.wait(self.queue_name, seen, backoff_ms / 1000, idle=fetched)
                    return None
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None
