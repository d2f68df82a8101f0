"""A thread that hears Redis pub/sub channels and hands every message to a function.

It waits on the socket for as long as nothing comes, instead of waking every fraction of a
second to see whether it should stop: an idle worker process has two of these (signals and
the wake doorbell), and each wake-up of a parked thread costs CPU. ``stop`` publishes on a
channel only this listener hears, so its wait ends at once. Lost connections are taken up
again after a pause.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Callable

import redis

log = logging.getLogger(__name__)

# The longest wait on the socket: only a backstop for a stop whose message could not be
# published (Redis gone: then the read fails first anyway).
LONGEST_WAIT_S = 30.0
RECONNECT_PAUSE_S = 1.0


class PubSubListener:
    def __init__(
        self,
        client: redis.Redis,
        channels: list[str],
        on_message: Callable[[str, bytes], None],
        *,
        name: str,
        on_subscribed: Callable[[], None] = lambda: None,
        on_lost: Callable[[], None] = lambda: None,
    ):
        self._client = client
        self._channels = channels
        self._on_message = on_message  # (channel, data)
        self._on_subscribed = on_subscribed  # rings may have been missed before: look once
        self._on_lost = on_lost  # from now until subscribed again, messages may be missed
        self._stop_channel = f"{channels[0]}:stop:{uuid.uuid4().hex}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        try:
            self._client.publish(self._stop_channel, b"")
        except (redis.RedisError, OSError) as exc:  # its read fails too, or its wait ends
            log.debug("could not wake the %s listener to stop it: %s", self._thread.name, exc)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(*self._channels, self._stop_channel)
                pubsub.get_message(timeout=LONGEST_WAIT_S)  # the first confirmation
                self._on_subscribed()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=LONGEST_WAIT_S)
                    if message is not None and message.get("type") == "message":
                        channel = message["channel"]
                        channel = channel.decode() if isinstance(channel, bytes) else channel
                        if channel != self._stop_channel:
                            self._on_message(channel, message["data"])
            except (redis.RedisError, OSError) as exc:
                log.debug("the %s listener lost Redis (%s); subscribing again", self._thread.name, exc)
                self._on_lost()
                self._stop.wait(RECONNECT_PAUSE_S)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001 - the connection may be gone already
                    pass
