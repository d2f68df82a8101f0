"""What a limit key allows, in the units the schedulers use (seconds per request / token)."""

from __future__ import annotations

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

    @property
    def limited(self) -> bool:
        return bool(self.request_interval or self.token_interval)


def limit_specs(deployments: Deployments, headroom: float) -> dict[str, LimitSpec]:
    """Deployment id -> its LimitSpec. Deployments sharing a limit_group share the strictest limits."""
    by_key: dict[str, list[Deployment]] = {}
    for deployment in deployments.by_id.values():
        by_key.setdefault(deployment.limit_key, []).append(deployment)
    specs: dict[str, LimitSpec] = {}
    for key, members in by_key.items():
        rpm = _strictest([d.rpm for d in members])
        tpm = _strictest([d.tpm for d in members])
        rate = 1.0 - headroom
        spec = LimitSpec(
            key=key,
            rpm=rpm,
            tpm=tpm,
            request_interval=SECONDS_PER_MINUTE / (rpm * rate) if rpm else 0.0,
            token_interval=SECONDS_PER_MINUTE / (tpm * rate) if tpm else 0.0,
        )
        for deployment in members:
            specs[deployment.id] = spec
    return specs


def _strictest(values: list[int | None]) -> int | None:
    present = [v for v in values if v]
    return min(present) if present else None
