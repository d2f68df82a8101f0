"""Prometheus metrics of a worker process (``llm-dispatch worker --metrics-port 9100``).

Counters and gauges are per process; sum them over the fleet in Prometheus. Names:

    llmd_jobs_finished_total{group,status}        jobs this worker finished (succeeded/failed)
    llmd_jobs{state}                               jobs in the database by state (fleet-wide, at start
                                                   and every 15 s)
    llmd_queue_depth{group,priority}               queued jobs by group and priority (fleet-wide, same)
    llmd_in_flight{deployment}                     provider calls in flight in this process
    llmd_requests_total{deployment,outcome}        provider calls: success or the error class
    llmd_request_seconds{deployment}               provider call latency (histogram)
    llmd_tokens_total{deployment,kind}             prompt / completion tokens billed (rate() = tokens/s)
    llmd_rate_limited_total{deployment}            429 answers
    llmd_retries_total{group}                      jobs put back for a retry
    llmd_fallbacks_total{from_group,to_group}      jobs moved to a fallback group
    llmd_cooldowns_total{deployment}               cooldowns this worker started
    llmd_cost_usd_total{deployment}                cost of billed calls (known prices only)
    llmd_cache_hits_total{group}                   requests answered from the response cache
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class Metrics:
    """The metrics of one worker process, in their own registry (several engines per test
    process must not collide in Prometheus's global registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_finished = Counter("llmd_jobs_finished_total", "Jobs finished by this worker",
                                     ["group", "status"], registry=r)
        self.jobs_by_state = Gauge("llmd_jobs", "Jobs in the database by state", ["state"], registry=r)
        self.queue_depth = Gauge("llmd_queue_depth", "Queued jobs by group and priority",
                                 ["group", "priority"], registry=r)
        self.in_flight = Gauge("llmd_in_flight", "Provider calls in flight", ["deployment"], registry=r)
        self.requests = Counter("llmd_requests_total", "Provider calls", ["deployment", "outcome"], registry=r)
        self.latency = Histogram("llmd_request_seconds", "Provider call latency", ["deployment"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("llmd_tokens_total", "Tokens billed", ["deployment", "kind"], registry=r)
        self.rate_limited = Counter("llmd_rate_limited_total", "429 answers", ["deployment"], registry=r)
        self.retries = Counter("llmd_retries_total", "Jobs put back for a retry", ["group"], registry=r)
        self.fallbacks = Counter("llmd_fallbacks_total", "Jobs moved to a fallback group",
                                 ["from_group", "to_group"], registry=r)
        self.cooldowns = Counter("llmd_cooldowns_total", "Cooldowns started", ["deployment"], registry=r)
        self.cost = Counter("llmd_cost_usd_total", "Cost of billed calls (USD)", ["deployment"], registry=r)
        self.cache_hits = Counter("llmd_cache_hits_total", "Requests answered from the cache", ["group"],
                                  registry=r)
        self._queue_labels: set[tuple[str, str]] = set()
        self._server = None

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve /metrics in a background thread; returns the port (useful with port 0)."""
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return self._server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def set_queue_depth(self, depths: dict[tuple[str, int], int]) -> None:
        labels = {(group, str(priority)) for group, priority in depths}
        for stale in self._queue_labels - labels:
            self.queue_depth.labels(*stale).set(0)
        for (group, priority), count in depths.items():
            self.queue_depth.labels(group, str(priority)).set(count)
        self._queue_labels = labels
