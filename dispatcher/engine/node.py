"""One worker's moving parts in one process: the engine on its own thread, woken by wake
messages. Used by the worker process (``workers/process.py``) and by embedded mode alike."""

from __future__ import annotations

import logging

from dispatcher.engine.engine import Engine
from dispatcher.engine.thread import EngineThread
from dispatcher.messaging import Messaging
from dispatcher.signals import WAKE, Signals

log = logging.getLogger(__name__)


class WorkerNode:
    """Runs the engine that claims and executes jobs, woken by wake messages and wake signals
    (the instant ones sent for awaited requests)."""

    def __init__(self, engine: Engine, messaging: Messaging, signals: Signals):
        self.engine = engine
        self.messaging = messaging
        self.signals = signals
        self._engine_thread = EngineThread(self.engine)

    @property
    def worker_id(self) -> str:
        return self.engine.worker_id

    def start(self) -> None:
        self._engine_thread.start()
        self.messaging.add_listener(self.engine.hint)  # starts the broker's consumer if needed
        self.signals.subscribe(WAKE, self._hint_groups)

    def request_stop(self, grace: float | None = None) -> None:
        """Stop taking work; in-flight calls get ``grace`` seconds (callable from a signal)."""
        self._engine_thread.request_stop(grace)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the engine to finish; True when it has."""
        self._engine_thread.join(timeout)
        return not self._engine_thread.alive

    def stop(self, grace: float | None = None) -> None:
        self.request_stop(grace)
        self.wait()
        self.close()

    def _hint_groups(self, groups: list[str]) -> None:
        for group in groups:
            self.engine.hint(group)

    def close(self) -> None:
        self.signals.unsubscribe(WAKE, self._hint_groups)
        self.messaging.remove_listener(self.engine.hint)  # the last listener stops the consumer

    @property
    def error(self) -> BaseException | None:
        return self._engine_thread.error
