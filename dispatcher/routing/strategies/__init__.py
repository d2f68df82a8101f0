"""Routing strategies, by their LiteLLM names.

A strategy only orders the deployments of a group by preference
(``order(candidates, stats) -> list``). The admission step then reserves capacity on the
first one in that order whose limits (and pause) allow it, so every strategy skips
deployments that are paused or full without knowing about limits. Adding a strategy is one
module with one class, plus one line in ``STRATEGIES``.
"""

from __future__ import annotations

import random
from typing import Any, Protocol, Sequence

from dispatcher.deployments import Deployment
from dispatcher.routing.stats import RoutingStats
from dispatcher.routing.strategies.cost import CostBased
from dispatcher.routing.strategies.latency import LatencyBased
from dispatcher.routing.strategies.least_busy import LeastBusy
from dispatcher.routing.strategies.simple_shuffle import SimpleShuffle
from dispatcher.routing.strategies.usage import UsageBased


class RoutingStrategy(Protocol):
    name: str

    def order(self, candidates: Sequence[Deployment], stats: RoutingStats) -> list[Deployment]: ...


STRATEGIES: dict[str, type] = {
    "simple-shuffle": SimpleShuffle,
    "least-busy": LeastBusy,
    "latency-based-routing": LatencyBased,
    "cost-based-routing": CostBased,
    "usage-based-routing": UsageBased,
    "usage-based-routing-v2": UsageBased,
}


def build_strategy(name: str, args: dict[str, Any] | None = None, rng: random.Random | None = None) -> RoutingStrategy:
    """The strategy named in ``router_settings.routing_strategy``, with its ``routing_strategy_args``."""
    return STRATEGIES[name](rng=rng or random.Random(), **(args or {}))
