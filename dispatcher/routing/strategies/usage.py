"""usage-based-routing(-v2): the deployment that used the fewest tokens this minute.

Token counts come from the limit schedules (what every worker reserved this minute), so
they are fleet-wide.
"""

from __future__ import annotations

import random
from typing import Sequence

from dispatcher.deployments import Deployment
from dispatcher.routing.stats import RoutingStats


class UsageBased:
    name = "usage-based-routing-v2"

    def __init__(self, rng: random.Random, **_: object):
        self._rng = rng

    def order(self, candidates: Sequence[Deployment], stats: RoutingStats) -> list[Deployment]:
        shuffled = list(candidates)
        self._rng.shuffle(shuffled)
        return sorted(shuffled, key=lambda d: stats.tokens_used(d.id))
