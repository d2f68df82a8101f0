"""Routing strategies: each one only chooses among deployments that can take the request.

A strategy is a small object with ``select(candidates) -> Deployment``; config picks one by
its LiteLLM name from ``STRATEGIES``. Recording what happened (latency, usage) is not a
strategy's job.
"""

from __future__ import annotations

import random
from typing import Protocol, Sequence

from dispatcher.deployments import Deployment


class RoutingStrategy(Protocol):
    name: str

    def select(self, candidates: Sequence[Deployment]) -> Deployment: ...


class SimpleShuffle:
    """Random choice weighted by ``weight``, else by rpm, else by tpm, else uniform."""

    name = "simple-shuffle"

    def __init__(self, rng: random.Random | None = None):
        self._rng = rng or random.Random()

    def select(self, candidates: Sequence[Deployment]) -> Deployment:
        if len(candidates) == 1:
            return candidates[0]
        weights = _weights(candidates)
        return self._rng.choices(candidates, weights=weights, k=1)[0]


def _weights(candidates: Sequence[Deployment]) -> list[float]:
    for attribute in ("weight", "rpm", "tpm"):
        values = [getattr(d, attribute) for d in candidates]
        if any(values):
            return [float(v or 0) for v in values]
    return [1.0] * len(candidates)


STRATEGIES = {SimpleShuffle.name: SimpleShuffle}
