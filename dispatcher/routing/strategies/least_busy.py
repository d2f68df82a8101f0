"""least-busy: the deployment with the fewest calls in flight across the whole fleet."""

from __future__ import annotations

import random
from typing import Sequence

from dispatcher.deployments import Deployment
from dispatcher.routing.stats import RoutingStats


class LeastBusy:
    name = "least-busy"

    def __init__(self, rng: random.Random, **_: object):
        self._rng = rng

    def order(self, candidates: Sequence[Deployment], stats: RoutingStats) -> list[Deployment]:
        shuffled = list(candidates)
        self._rng.shuffle(shuffled)  # random among equals
        return sorted(shuffled, key=lambda d: stats.in_flight(d.id))
