"""cost-based-routing: the cheapest deployment (config prices, else the price table).

Price is input plus output cost per token; deployments of unknown price come last.
``routing_strategy_args.max_wait_s`` (default 5): a call waits up to that long for a send time
on the cheapest deployment under its rpm/tpm before a dearer one takes it. Limits are paced
over the minute, so "within its limits" means "can send soon", not "has allowance left this
minute"; the wait keeps a short burst of work on the cheap deployment instead of overflowing
at once.
"""

from __future__ import annotations

import random
from typing import Sequence

from dispatcher.deployments import Deployment
from dispatcher.pricing import price_for
from dispatcher.routing.stats import RoutingStats


class CostBased:
    name = "cost-based-routing"

    def __init__(self, rng: random.Random, max_wait_s: float = 5.0, **_: object):
        self._rng = rng
        self._prices: dict[str, float] = {}
        self.wait_s = float(max_wait_s)  # how long the first choice is worth waiting for

    def _price(self, deployment: Deployment) -> float:
        if deployment.id not in self._prices:
            price = price_for(deployment)
            self._prices[deployment.id] = (
                float("inf") if price is None else price.input_per_token + price.output_per_token
            )
        return self._prices[deployment.id]

    def order(self, candidates: Sequence[Deployment], stats: RoutingStats) -> list[Deployment]:
        shuffled = list(candidates)
        self._rng.shuffle(shuffled)
        return sorted(shuffled, key=self._price)
