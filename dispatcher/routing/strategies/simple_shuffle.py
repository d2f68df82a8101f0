"""simple-shuffle: random, weighted by ``weight``, else by rpm, else by tpm, else uniform."""

from __future__ import annotations

import random
from typing import Sequence

from dispatcher.deployments import Deployment
from dispatcher.routing.stats import RoutingStats


class SimpleShuffle:
    name = "simple-shuffle"

    def __init__(self, rng: random.Random, **_: object):
        self._rng = rng

    def order(self, candidates: Sequence[Deployment], stats: RoutingStats) -> list[Deployment]:
        if len(candidates) == 1:
            return list(candidates)
        weights = weights_of(candidates)
        # Weighted order without replacement (Efraimidis-Spirakis): sort by u^(1/w).
        keyed = [
            (self._rng.random() ** (1.0 / w) if w > 0 else -1.0, i) for i, w in enumerate(weights)
        ]
        keyed.sort(reverse=True)
        return [candidates[i] for _, i in keyed]


def weights_of(candidates: Sequence[Deployment]) -> list[float]:
    for attribute in ("weight", "rpm", "tpm"):
        values = [getattr(d, attribute) for d in candidates]
        if any(values):
            return [float(v or 0) for v in values]
    return [1.0] * len(candidates)
