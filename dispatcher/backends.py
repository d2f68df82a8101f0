"""The one place that decides where shared state lives: in Redis for a fleet, in this process
(and the database) when no ``redis_url`` is configured.

``build_backends(settings)`` returns the bundle everything else is given: the client, each
worker engine, the worker process and the deployment report. Each piece has an in-process
twin with the same interface, so embedded and distributed modes run the same code and
differ only by the objects handed in (as dramatiq's ``Worker(broker)`` is given its broker):

    piece                  RedisBackends                 LocalBackends
    wake messaging         RedisMessaging (RedisBroker)  Messaging (StubBroker)
    instant signals        RedisSignals (pub/sub)        Signals (callbacks)
    rate limits, budgets   RedisLimitBackend             MemoryLimitBackend (per engine)
    response cache         RedisResponseCache            DatabaseResponseCache
    routing-stats exchange RedisStatsExchange            LocalStatsExchange (no-op)

dramatiq and the Redis clients are imported only when a piece is first used: commands that
only read the database (status, results) never load them.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from dispatcher.cache import DatabaseResponseCache, ResponseCache
from dispatcher.config.schema import DispatcherSettings
from dispatcher.limits.backend import LimitBackend, LimitUsage
from dispatcher.limits.spec import LimitSpec

if TYPE_CHECKING:  # pragma: no cover
    from dispatcher.messaging import Messaging
    from dispatcher.signals import Signals
    from dispatcher.routing.stats import LocalStatsExchange, RedisStatsExchange
    from dispatcher.store.database import Database

log = logging.getLogger(__name__)

RunInThread = Callable[..., Awaitable[Any]]


@dataclass
class EngineState:
    """What one worker engine shares with the fleet; bound to the event loop it was built on."""

    limits: LimitBackend
    cache: ResponseCache
    stats: "RedisStatsExchange | LocalStatsExchange"

    async def aclose(self) -> None:
        try:
            await self.stats.withdraw()
        except Exception as exc:  # noqa: BLE001 - the published numbers expire on their own
            log.debug("could not withdraw routing stats: %s", exc)
        await self.limits.aclose()


class Backends(ABC):
    """The shared-state backends of one configuration (see the module docstring)."""

    embedded: bool

    def __init__(self, settings: DispatcherSettings):
        self.settings = settings
        self._messaging: Messaging | None = None
        self._signals: Signals | None = None

    @property
    def messaging(self) -> "Messaging":
        """Wake messages; built on first use (dramatiq is only needed to enqueue or consume)."""
        if self._messaging is None:
            self._messaging = self._new_messaging()
        return self._messaging

    @property
    def signals(self) -> "Signals":
        """Instant wake and finished signals for awaited requests (dispatcher/signals.py)."""
        if self._signals is None:
            self._signals = self._new_signals()
        return self._signals

    def check(self) -> None:
        """Raise ServiceUnavailableError naming what cannot be reached (in-process: nothing)."""
        self.messaging.check()

    @abstractmethod
    def engine_state(
        self, *, worker_id: str, deployment_ids: list[str], database: "Database", run_in_thread: RunInThread
    ) -> EngineState:
        """The state one engine shares; call it on the engine's event loop."""

    def live_use(self, specs: dict[str, LimitSpec]) -> dict[str, tuple[LimitUsage, int]]:
        """Per deployment id: what the fleet uses now and its calls in flight (for reports);
        empty when nothing outside this process can be read."""
        return {}

    @abstractmethod
    def _new_messaging(self) -> "Messaging": ...

    @abstractmethod
    def _new_signals(self) -> "Signals": ...

    def close(self) -> None:
        if self._signals is not None:
            self._signals.close()
            self._signals = None
        if self._messaging is not None:
            self._messaging.close()
            self._messaging = None


class RedisBackends(Backends):
    """A fleet: wake messages, limits, routing numbers and cached answers in Redis."""

    embedded = False

    def _new_messaging(self) -> "Messaging":
        from dispatcher.messaging import RedisMessaging

        return RedisMessaging(self.settings.redis_url, self.settings.namespace)

    def _new_signals(self) -> "Signals":
        from dispatcher.signals import RedisSignals

        return RedisSignals(self.settings.redis_url, self.settings.namespace)

    def _limits(self):
        from dispatcher.limits.redis_backend import RedisLimitBackend

        return RedisLimitBackend(self.settings.redis_url, self.settings.namespace)

    def engine_state(self, *, worker_id, deployment_ids, database, run_in_thread) -> EngineState:
        from dispatcher.cache import RedisResponseCache
        from dispatcher.routing.stats import RedisStatsExchange

        namespace = self.settings.namespace
        limits = self._limits()
        return EngineState(
            limits=limits,
            cache=RedisResponseCache(limits.client, namespace),
            stats=RedisStatsExchange(limits.client, namespace, worker_id, deployment_ids),
        )

    def live_use(self, specs: dict[str, LimitSpec]) -> dict[str, tuple[LimitUsage, int]]:
        return asyncio.run(self._read_live(specs))

    async def _read_live(self, specs: dict[str, LimitSpec]) -> dict[str, tuple[LimitUsage, int]]:
        from dispatcher.routing.stats import fleet_in_flight

        limits = self._limits()
        try:
            ids = list(specs)
            usages = await limits.usage([specs[d] for d in ids])
            in_flight = await fleet_in_flight(limits.client, self.settings.namespace, ids)
        finally:
            await limits.aclose()
        return {d: (usage, busy) for d, usage, busy in zip(ids, usages, in_flight)}


class LocalBackends(Backends):
    """Embedded mode: everything in this process, cached answers in the database."""

    embedded = True

    def _new_messaging(self) -> "Messaging":
        from dramatiq.brokers.stub import StubBroker

        from dispatcher.messaging import Messaging

        return Messaging(StubBroker(middleware=[]))

    def _new_signals(self) -> "Signals":
        from dispatcher.signals import Signals

        return Signals()

    def check(self) -> None:
        return None  # nothing outside this process to reach

    def engine_state(self, *, worker_id, deployment_ids, database, run_in_thread) -> EngineState:
        from dispatcher.limits.memory_backend import MemoryLimitBackend
        from dispatcher.routing.stats import LocalStatsExchange

        # The database cache, not a memory one: separate runs without Redis share answers.
        return EngineState(
            limits=MemoryLimitBackend(),
            cache=DatabaseResponseCache(database, run_in_thread),
            stats=LocalStatsExchange(),
        )


def build_backends(settings: DispatcherSettings) -> Backends:
    """Redis when ``redis_url`` is set, this process otherwise: the only place that asks."""
    return RedisBackends(settings) if settings.redis_url else LocalBackends(settings)
