"""One worker's moving parts in one process: the engine, woken by the broker's consumer."""

from __future__ import annotations

import logging
from typing import Iterable

from dispatcher.config.schema import DispatcherConfig
from dispatcher.deployments import Deployments
from dispatcher.engine.engine import Engine
from dispatcher.engine.thread import EngineThread
from dispatcher.store.database import Database
from workers.broker import Messaging

log = logging.getLogger(__name__)


class WorkerNode:
    """Runs the engine that claims and executes jobs, woken by wake messages."""

    def __init__(
        self,
        *,
        config: DispatcherConfig,
        deployments: Deployments,
        database: Database,
        messaging: Messaging,
        worker_id: str | None = None,
        concurrency: int | None = None,
        groups: Iterable[str] | None = None,
        metrics=None,
    ):
        self.messaging = messaging
        self.engine = Engine(
            config=config,
            deployments=deployments,
            database=database,
            worker_id=worker_id,
            concurrency=concurrency,
            groups=groups,
            notify_others=messaging.notify_quietly,
            metrics=metrics,
        )
        self._engine_thread = EngineThread(self.engine)

    @property
    def worker_id(self) -> str:
        return self.engine.worker_id

    def start(self) -> None:
        self._engine_thread.start()
        self.messaging.add_listener(self.engine.hint)  # starts the broker's consumer if needed

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

    def close(self) -> None:
        self.messaging.remove_listener(self.engine.hint)  # the last listener stops the consumer

    @property
    def error(self) -> BaseException | None:
        return self._engine_thread.error
