"""How many tokens to book for a call: our estimate, scaled by how the provider counted so far.

The prompt estimate (about four characters a token) can be off by tens of percent for a given
tokenizer or language. Corrections after a call only help while the schedule has slack: under
saturation send times are booked up to the lookahead horizon and a refund cannot pull the
schedule before them. So a tpm-bound deployment would run at (real / estimated) of its limit.
Learning the ratio per deployment makes the booking itself close to what the provider counts.
"""

from __future__ import annotations

import math

from dispatcher.limits.spec import TokenBooking
from dispatcher.providers.base import Usage

# Each observation weighs this much less than the one after it (about the last 50 calls count).
DECAY = 0.98
# Ratios are kept in these bounds, so one odd answer cannot make bookings absurd.
PROMPT_RATIO_BOUNDS = (0.2, 5.0)
COMPLETION_RATIO_BOUNDS = (0.02, 2.0)


class TokenCalibration:
    """Per deployment: real prompt tokens per estimated one, completion tokens per requested one."""

    def __init__(self) -> None:
        # deployment id -> [real prompt, estimated prompt, real completion, requested completion]
        self._sums: dict[str, list[float]] = {}

    def prompt_ratio(self, deployment_id: str) -> float:
        sums = self._sums.get(deployment_id)
        if sums is None or sums[1] <= 0:
            return 1.0
        return _bounded(sums[0] / sums[1], PROMPT_RATIO_BOUNDS)

    def completion_ratio(self, deployment_id: str) -> float:
        sums = self._sums.get(deployment_id)
        if sums is None or sums[3] <= 0:
            return 1.0
        return _bounded(sums[2] / sums[3], COMPLETION_RATIO_BOUNDS)

    def booking(
        self, deployment_id: str, est_prompt: int, est_completion: int, *, completion_follows_usage: bool
    ) -> TokenBooking:
        """Tokens to book. The completion part stays the requested maximum unless the provider
        counts real usage (``tpm_counts: usage``): then it is scaled by what calls really used."""
        prompt = _ceil(est_prompt * self.prompt_ratio(deployment_id))
        if completion_follows_usage:
            return TokenBooking(prompt, _ceil(est_completion * self.completion_ratio(deployment_id)))
        return TokenBooking(prompt, est_completion)

    def observe(self, deployment_id: str, est_prompt: int, est_completion: int, usage: Usage) -> None:
        if usage.prompt_tokens <= 0:
            return  # a provider that reports no real counts teaches nothing (and must not shrink bookings)
        sums = self._sums.setdefault(deployment_id, [0.0, 0.0, 0.0, 0.0])
        for index, value in enumerate(
            (usage.prompt_tokens, est_prompt, usage.completion_tokens, est_completion)
        ):
            sums[index] = sums[index] * DECAY + value


def _bounded(value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return min(high, max(low, value))


def _ceil(value: float) -> int:
    return math.ceil(value - 1e-9)  # 100 * 0.6 is 60.000000000000007, not 61 tokens
