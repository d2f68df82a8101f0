"""One thread that takes wake messages off a dramatiq broker and runs their actor.

Not dramatiq's ``Worker``: that runs a consumer thread and worker threads, and an idle worker
thread wakes every ``worker_timeout`` to see whether it should stop (four times a second at
250 ms), which is most of what an idle worker process costs once the consumer waits on the
doorbell. A wake message is handled in microseconds (it only sets a flag), so the thread that
fetched it handles it, and acks it at once: wake messages are hints, a lost one costs only a
poll's delay. Stopping is prompt on Redis: ``Doorbell.stop`` rings every waiting consumer.
"""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.errors import BrokerConnectionError

log = logging.getLogger(__name__)

PREFETCH = 8  # wake messages taken per fetch
RECONNECT_PAUSE_S = 1.0


class WakeConsumer:
    def __init__(self, broker: dramatiq.Broker, queue_name: str, *, timeout_ms: int):
        self._broker = broker
        self._queue_name = queue_name
        self._timeout_ms = timeout_ms  # the longest wait between looks at the stop flag
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmd-wake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Stop after the current wait (call before waking the waits, as a ring does)."""
        self._stop.set()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            consumer = self._broker.consume(self._queue_name, prefetch=PREFETCH, timeout=self._timeout_ms)
            try:
                self._drain(consumer)
            except BrokerConnectionError as exc:
                log.debug("the wake consumer lost the broker (%s); reconnecting", exc)
                self._stop.wait(RECONNECT_PAUSE_S)
            except Exception:  # noqa: BLE001 - as dramatiq's consumer thread: log, start again
                log.exception("the wake consumer failed; starting it again")
                self._stop.wait(RECONNECT_PAUSE_S)
            finally:
                try:
                    consumer.close()  # gives back messages fetched and not handled yet
                except Exception as exc:  # noqa: BLE001 - the connection may be gone already
                    log.debug("closing the wake consumer failed: %s", exc)

    def _drain(self, consumer) -> None:
        for message in consumer:  # None after a wait with nothing (timeout_ms, or a ring)
            if message is not None:
                try:
                    actor = self._broker.get_actor(message.actor_name)
                    actor(*message.args, **message.kwargs)
                except Exception:  # noqa: BLE001 - one listener's bug must not stop the wake-ups
                    log.exception("handling a wake message failed")
                finally:
                    consumer.ack(message)
            if self._stop.is_set():
                return
