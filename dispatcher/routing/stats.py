"""What routing strategies read: calls in flight, recent latency, tokens used this minute.

Each worker counts its own calls exactly and, with Redis, publishes its counts every half
second and reads everyone else's, so ``least-busy`` and ``latency-based-routing`` see the
whole fleet (a little stale, which is fine for choosing; limits are enforced elsewhere,
atomically). Without Redis the counts are this process's own.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from dispatcher.limits import keys

LATENCY_EMA_WEIGHT = 0.2
REMOTE_STALE_AFTER_S = 5.0


@dataclass
class DeploymentStats:
    in_flight: int = 0
    latency_ms: float | None = None
    samples: int = 0

    def record_latency(self, latency_ms: float | None) -> None:
        """Fold one successful call's latency into the moving average."""
        if latency_ms is None:
            return
        if self.latency_ms is None:
            self.latency_ms = latency_ms
        else:
            self.latency_ms += LATENCY_EMA_WEIGHT * (latency_ms - self.latency_ms)
        self.samples += 1


@dataclass
class RoutingStats:
    """Per-deployment numbers the strategies use (local exact + remote published)."""

    local: dict[str, DeploymentStats] = field(default_factory=lambda: defaultdict(DeploymentStats))
    # Calls this worker has committed to each deployment: booked (waiting for their send
    # time) or in flight. Admission keeps it; least-busy counts booked calls as busy too.
    held: Counter = field(default_factory=Counter)
    remote_in_flight: dict[str, int] = field(default_factory=dict)
    remote_latency: dict[str, tuple[float, int]] = field(default_factory=dict)
    tokens_this_minute: dict[str, int] = field(default_factory=dict)

    # -- recording (this worker) ----------------------------------------------------------

    def call_started(self, deployment_id: str) -> None:
        self.local[deployment_id].in_flight += 1

    def call_ended(self, deployment_id: str, latency_ms: float | None) -> None:
        stats = self.local[deployment_id]
        stats.in_flight -= 1
        stats.record_latency(latency_ms)

    # -- reading (strategies) -------------------------------------------------------------

    def local_in_flight(self, deployment_id: str) -> int:
        return max(self.local[deployment_id].in_flight, self.held[deployment_id])

    def in_flight(self, deployment_id: str) -> int:
        return self.local_in_flight(deployment_id) + self.remote_in_flight.get(deployment_id, 0)

    def latency_ms(self, deployment_id: str) -> float | None:
        """Sample-weighted average of this worker's and others' moving averages."""
        mine = self.local[deployment_id]
        total, weight = 0.0, 0
        if mine.latency_ms is not None:
            total, weight = mine.latency_ms * mine.samples, mine.samples
        remote = self.remote_latency.get(deployment_id)
        if remote is not None:
            total += remote[0] * remote[1]
            weight += remote[1]
        return total / weight if weight else None

    def tokens_used(self, deployment_id: str) -> int:
        return self.tokens_this_minute.get(deployment_id, 0)


class LocalStatsExchange:
    """Embedded mode: this process's own counts are all there is to know."""

    async def sync(self, stats: RoutingStats) -> None:
        return None

    async def withdraw(self) -> None:
        return None


class RedisStatsExchange:
    """Publishes this worker's numbers to Redis and reads the fleet's (one pipeline)."""

    def __init__(self, redis_client, namespace: str, worker_id: str, deployment_ids: list[str]):
        self._redis = redis_client
        self._namespace = namespace
        self._worker_id = worker_id
        self._deployments = deployment_ids

    async def sync(self, stats: RoutingStats) -> None:
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        for deployment_id in self._deployments:
            mine = stats.local[deployment_id]
            latency = "" if mine.latency_ms is None else f"{mine.latency_ms:.3f}"
            key = keys.routing_hash(self._namespace, deployment_id)
            busy = stats.local_in_flight(deployment_id)
            pipe.hset(key, self._worker_id, f"{busy}|{latency}|{mine.samples}|{now:.3f}")
            pipe.expire(key, 3600)
            pipe.hgetall(key)
        replies = await pipe.execute()
        for index, deployment_id in enumerate(self._deployments):
            fields = replies[3 * index + 2]
            in_flight, latency_sum, samples = 0, 0.0, 0
            for worker, raw in fields.items():
                worker = worker.decode() if isinstance(worker, bytes) else worker
                if worker == self._worker_id:
                    continue
                parts = (raw.decode() if isinstance(raw, bytes) else raw).split("|")
                if len(parts) != 4 or now - float(parts[3]) > REMOTE_STALE_AFTER_S:
                    continue
                in_flight += int(parts[0])
                if parts[1]:
                    latency_sum += float(parts[1]) * int(parts[2])
                    samples += int(parts[2])
            stats.remote_in_flight[deployment_id] = in_flight
            if samples:
                stats.remote_latency[deployment_id] = (latency_sum / samples, samples)

    async def withdraw(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for deployment_id in self._deployments:
            pipe.hdel(keys.routing_hash(self._namespace, deployment_id), self._worker_id)
        await pipe.execute()


async def fleet_in_flight(redis_client, namespace: str, deployment_ids: list[str]) -> list[int]:
    """Calls in flight per deployment over every worker that published lately (for reports)."""
    pipe = redis_client.pipeline(transaction=False)
    for deployment_id in deployment_ids:
        pipe.hgetall(keys.routing_hash(namespace, deployment_id))
    replies = await pipe.execute()
    now = time.time()
    totals = []
    for fields in replies:
        in_flight = 0
        for raw in fields.values():
            parts = (raw.decode() if isinstance(raw, bytes) else raw).split("|")
            if len(parts) == 4 and now - float(parts[3]) <= REMOTE_STALE_AFTER_S:
                in_flight += int(parts[0])
        totals.append(in_flight)
    return totals
