"""One worker's moving parts in one process: a dramatiq consumer and the engine."""

from __future__ import annotations

import logging
from typing import Iterable

import dramatiq

from dispatcher.config.schema import DispatcherConfig
from dispatcher.deployments import Deployments
from dispatcher.engine.engine import Engine
from dispatcher.engine.thread import EngineThread
from dispatcher.store.database import Database
from workers.broker import Messaging

log = logging.getLogger(__name__)

# Wake messages are handled in microseconds; two threads are plenty.
DRAMATIQ_THREADS = 2
# How long an idle dramatiq consumer waits between looks at Redis (ms): bounds wake latency.
DRAMATIQ_IDLE_TIMEOUT_MS = 100


class WorkerNode:
    """Consumes wake messages and runs the engine that claims and executes jobs."""

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
        self._consumer = dramatiq.Worker(
            messaging.broker,
            worker_threads=DRAMATIQ_THREADS,
            worker_timeout=DRAMATIQ_IDLE_TIMEOUT_MS,
        )

    @property
    def worker_id(self) -> str:
        return self.engine.worker_id

    def start(self) -> None:
        self._engine_thread.start()
        self.messaging.add_listener(self.engine.hint)
        self._consumer.start()

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
        self.messaging.remove_listener(self.engine.hint)
        self._consumer.stop(timeout=2000)

    @property
    def error(self) -> BaseException | None:
        return self._engine_thread.error
