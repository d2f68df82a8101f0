"""Picks the deployment of a model group that serves the next call."""

from __future__ import annotations

import logging
from typing import Iterable

from dispatcher.deployments import Deployment, Deployments
from dispatcher.routing.strategies import STRATEGIES, RoutingStrategy, SimpleShuffle

log = logging.getLogger(__name__)


class Router:
    def __init__(self, deployments: Deployments, strategy: RoutingStrategy):
        self._deployments = deployments
        self.strategy = strategy

    def choose(self, group: str, exclude: Iterable[str] = ()) -> Deployment | None:
        """A deployment of ``group`` (None when the group has none left to try)."""
        excluded = set(exclude)
        candidates = [d for d in self._deployments.group(group) if d.id not in excluded]
        if not candidates:
            return None
        return self.strategy.select(candidates)


def build_strategy(name: str) -> RoutingStrategy:
    strategy = STRATEGIES.get(name)
    if strategy is None:
        log.warning("routing_strategy %r is not implemented yet; using simple-shuffle", name)
        strategy = SimpleShuffle
    return strategy()
