"""What a limit key allows, in the units the schedulers use (seconds per request / token)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dispatcher.deployments import Deployment, Deployments

SECONDS_PER_MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """The schedule of one limit key.

    ``request_interval`` is the spacing between two requests (0: no rpm limit);
    ``token_interval`` is the time one token of allowance takes to refill (0: no tpm limit).
    """

    key: str
    rpm: int | None
    tpm: int | None
    request_interval: float
    token_interval: float
    # Input (prompt) and output (completion) tokens limited apart, as Anthropic does (0: none).
    itpm: int | None = None
    otpm: int | None = None
    input_interval: float = 0.0
    output_interval: float = 0.0
    # Header credit (limits/credit.py): how far ahead of the even pace sends the provider says
    # it has room for may run (0: never, only the even pace), and what of that room is kept
    # for urgent calls, per dimension (requests, tokens, input tokens, output tokens).
    burst_s: float = 0.0
    urgent_reserve: tuple[int, int, int, int] = (0, 0, 0, 0)
    # What a provider's word of room is lowered by (timing jitter between our count and its).
    credit_margin: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def limited(self) -> bool:
        return bool(self.request_interval or self.token_interval or self.splits_tokens)

    @property
    def splits_tokens(self) -> bool:
        """Input and output tokens have schedules of their own (itpm or otpm is set)."""
        return bool(self.input_interval or self.output_interval)


@dataclass(frozen=True, slots=True)
class TokenBooking:
    """Tokens one call books: its input part against itpm, its output part against otpm,
    both together against tpm."""

    input: int
    output: int

    @property
    def total(self) -> int:
        return self.input + self.output


def limit_specs(
    deployments: Deployments, headroom: float, *, provider_headers: bool = False, urgent_reserve: float = 0.0
) -> dict[str, LimitSpec]:
    """Deployment id -> its LimitSpec. Deployments sharing a limit_group share the strictest limits.

    ``provider_headers``: the schedule may spend the room a provider's rate-limit headers
    report (up to one minute of the limits ahead of the even pace), keeping ``urgent_reserve``
    of each limit for urgent calls.
    """
    by_key: dict[str, list[Deployment]] = {}
    for deployment in deployments.by_id.values():
        by_key.setdefault(deployment.limit_key, []).append(deployment)
    specs: dict[str, LimitSpec] = {}
    for key, members in by_key.items():
        rpm = _strictest([d.rpm for d in members])
        tpm = _strictest([d.tpm for d in members])
        itpm = _strictest([d.itpm for d in members])
        otpm = _strictest([d.otpm for d in members])
        rate = 1.0 - headroom
        spec = LimitSpec(
            key=key,
            rpm=rpm,
            tpm=tpm,
            request_interval=_interval(rpm, rate),
            token_interval=_interval(tpm, rate),
            itpm=itpm,
            otpm=otpm,
            input_interval=_interval(itpm, rate),
            output_interval=_interval(otpm, rate),
            burst_s=SECONDS_PER_MINUTE if provider_headers else 0.0,
            urgent_reserve=_shares((rpm, tpm, itpm, otpm), urgent_reserve),
            credit_margin=_shares((rpm, tpm, itpm, otpm), headroom),
        )
        for deployment in members:
            specs[deployment.id] = spec
    return specs


def _shares(limits: tuple[int | None, ...], share: float) -> tuple[int, int, int, int]:
    return tuple(math.ceil(limit * share) if limit else 0 for limit in limits)  # type: ignore[return-value]


def _strictest(values: list[int | None]) -> int | None:
    present = [v for v in values if v]
    return min(present) if present else None


def _interval(per_minute: int | None, rate: float) -> float:
    """Seconds one unit of a per-minute allowance takes to refill (0: no limit)."""
    return SECONDS_PER_MINUTE / (per_minute * rate) if per_minute else 0.0
