"""An idle Redis consumer of wake messages waits on the doorbell: it sends Redis nothing for
seconds, yet a wake message reaches its listener at once, and it stops promptly."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlparse

from dispatcher.messaging import RedisMessaging


def commands_naming(redis_url: str, text: str, seconds: float) -> int:
    """Commands (scripts' inner commands included) whose MONITOR line names ``text``."""
    url = urlparse(redis_url)
    count, buffer = 0, b""
    with socket.create_connection((url.hostname, url.port or 6379)) as conn:
        conn.sendall(b"MONITOR\r\n")
        conn.settimeout(0.1)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                buffer += conn.recv(1 << 16)
            except TimeoutError:
                continue
            *lines, buffer = buffer.split(b"\r\n")
            count += sum(text.encode() in line for line in lines)
    return count


def test_an_idle_consumer_is_quiet_and_wakes_at_once(redis_server, redis_namespace):
    messaging = RedisMessaging(redis_server, redis_namespace)
    woken: list[tuple[str, float]] = []
    arrived = threading.Event()

    def listener(group: str) -> None:
        woken.append((group, time.monotonic()))
        arrived.set()

    messaging.add_listener(listener)
    try:
        time.sleep(1.0)  # subscribed, and past the first fetches
        assert messaging.broker.doorbell.listening
        # dramatiq's own consumer fetched each queue every 100 ms: ~60 commands in 2 s.
        assert commands_naming(redis_server, redis_namespace, 2.0) <= 6

        sent = time.monotonic()
        messaging.notify(["chat"])
        assert arrived.wait(2.0)
        assert woken[0][0] == "chat"
        assert woken[0][1] - sent < 0.5  # a ring, not the 10 s idle fetch
    finally:
        started = time.monotonic()
        messaging.close()
    assert time.monotonic() - started < 2.0


def test_a_wake_sent_before_the_consumer_starts_is_delivered(redis_server, redis_namespace):
    messaging = RedisMessaging(redis_server, redis_namespace)
    arrived = threading.Event()
    try:
        messaging.notify(["chat"])  # nobody rings for it later: the first fetch finds it
        messaging.add_listener(lambda group: arrived.set())
        assert arrived.wait(2.0)
    finally:
        messaging.close()
