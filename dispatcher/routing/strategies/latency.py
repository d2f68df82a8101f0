"""latency-based-routing: the lowest moving-average latency, sharing among near-equals.

``routing_strategy_args.lowest_latency_buffer`` (default 0.1): deployments within that
fraction of the fastest share traffic at random, so one that is a millisecond faster does
not take everything. Deployments never measured come first, so they get measured.
"""

from __future__ import annotations

import random
from typing import Sequence

from dispatcher.deployments import Deployment
from dispatcher.routing.stats import RoutingStats


class LatencyBased:
    name = "latency-based-routing"

    def __init__(self, rng: random.Random, lowest_latency_buffer: float = 0.1, **_: object):
        self._rng = rng
        self._buffer = float(lowest_latency_buffer)

    def order(self, candidates: Sequence[Deployment], stats: RoutingStats) -> list[Deployment]:
        measured = [(stats.latency_ms(d.id), d) for d in candidates]
        unknown = [d for latency, d in measured if latency is None]
        known = sorted(((latency, d) for latency, d in measured if latency is not None), key=lambda x: x[0])
        self._rng.shuffle(unknown)
        if not known:
            return unknown
        best = known[0][0]
        near = [d for latency, d in known if latency <= best * (1 + self._buffer)]
        rest = [d for latency, d in known if latency > best * (1 + self._buffer)]
        self._rng.shuffle(near)
        return unknown + near + rest
