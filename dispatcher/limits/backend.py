"""The interface both limit backends implement (Redis for a fleet, memory for one process)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from dispatcher.limits.spec import LimitSpec


@dataclass(slots=True)
class Reservation:
    """Send times granted on one candidate (index into the candidates asked for)."""

    candidate: int
    send_times: list[float]  # in the backend's clock
    clock_offset: float  # backend clock minus local time.time()

    def local_send_time(self, i: int) -> float:
        return self.send_times[i] - self.clock_offset


@dataclass(slots=True)
class Blocked:
    """No candidate can take a request before ``until`` (local time.time() clock).

    ``reason`` is "cooldown" when every candidate is cooling down after failures, else "limits".
    """

    until: float
    reason: str = "limits"


@dataclass(slots=True)
class LimitUsage:
    """What ``models`` shows for one limit key."""

    requests_this_minute: int = 0
    tokens_this_minute: int = 0
    paused_for_s: float = 0.0
    backlog_s: float = 0.0  # how far ahead the schedule is already booked


# (spec, request delta, token delta), or with input and output token deltas after them (for
# a spec with itpm or otpm).
Correction = tuple[LimitSpec, int, int] | tuple[LimitSpec, int, int, int, int]


def split_deltas(correction: Correction) -> tuple[int, int]:
    """The input and output token deltas of a correction (0 when it gives none)."""
    return (correction[3], correction[4]) if len(correction) == 5 else (0, 0)


class LimitBackend(Protocol):
    async def reserve(
        self,
        candidates: Sequence[LimitSpec],
        count: int,
        tokens: int,
        horizon: float,
        deployment_ids: Sequence[str] = (),
        input_tokens: int = 0,
    ) -> Reservation | Blocked:
        """Reserve up to ``count`` sends of ``tokens`` each on the first candidate that can.

        ``deployment_ids`` (parallel to ``candidates``) are checked for cooldowns.
        ``input_tokens`` of each send's ``tokens`` count against itpm, the rest against otpm.
        """

    async def record_failure(self, deployment_id: str, allowed_fails: int, cooldown_s: float) -> bool:
        """Count a failure; True when it puts the deployment in cooldown (fleet-wide)."""

    async def cooldowns(self, deployment_ids: Sequence[str]) -> list[float]:
        """Seconds of cooldown left for each deployment (0 when none)."""

    async def add_spend(self, scopes: Sequence[tuple[str, float]], amount: float) -> None:
        """Add ``amount`` USD to each (scope, period seconds) budget's current period."""

    async def spend(self, scopes: Sequence[tuple[str, float]]) -> list[float]:
        """USD spent in the current period of each (scope, period seconds) budget."""

    async def adjust(self, corrections: Sequence[Correction], horizon: float) -> None:
        """Apply corrections; negative deltas are refunds."""

    async def pause(self, spec: LimitSpec, seconds: float) -> None:
        """Send nothing on this key for ``seconds`` (fleet-wide)."""

    async def usage(self, specs: Sequence[LimitSpec]) -> list[LimitUsage]: ...

    async def aclose(self) -> None: ...
