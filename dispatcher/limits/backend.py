"""The interface both limit backends implement (Redis for a fleet, memory for one process)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from dispatcher.limits.credit import Position, Word
from dispatcher.limits.spec import LimitSpec


@dataclass(slots=True)
class Reservation:
    """Send times granted on one candidate (index into the candidates asked for)."""

    candidate: int
    send_times: list[float]  # in the backend's clock
    clock_offset: float  # backend clock minus local time.time()
    # The key's count of requests before these sends: each send's place in it is what a
    # reply's rate-limit headers are read against (credit.py).
    requests_before: int = 0
    credited: int = 0  # the first this many sends go on the provider's word of room, not the pace
    in_flight_before: int = 0  # the key's calls in flight before these sends (credit.py)

    def local_send_time(self, i: int) -> float:
        return self.send_times[i] - self.clock_offset

    def position(self, i: int) -> Position:
        """Where the ``i``-th send stands in the key's count once counted."""
        return Position(self.requests_before + i + 1, self.in_flight_before + i)


@dataclass(slots=True)
class Blocked:
    """No candidate can take a request before ``until`` (local time.time() clock).

    ``reason`` is "cooldown" when every candidate is cooling down after failures, else "limits".
    ``urgent_room``: a candidate's provider said it has room that is kept for urgent calls.
    """

    until: float
    reason: str = "limits"
    urgent_room: bool = False


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
        urgent: bool = False,
    ) -> Reservation | Blocked:
        """Reserve up to ``count`` sends of ``tokens`` each on the first candidate that can.

        ``deployment_ids`` (parallel to ``candidates``) are checked for cooldowns.
        ``input_tokens`` of each send's ``tokens`` count against itpm, the rest against otpm.
        ``urgent`` sends may spend the credit kept for urgent calls (``spec.urgent_reserve``).
        """

    async def observe(self, spec: LimitSpec, word: Word) -> None:
        """Keep what a provider's rate-limit headers allow (credit.read_word)."""

    async def finish(self, ended: Sequence[tuple[LimitSpec, int]]) -> None:
        """These many calls of each key are no longer in flight (answered, or never sent)."""

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
