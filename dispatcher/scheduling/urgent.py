"""Calls of this worker that hold a booked send time and are waiting for it.

Under a saturated rate limit every worker books send times up to the lookahead horizon
ahead, so a job that arrives now would wait for the horizon behind calls already booked.
An urgent job need not: it takes the earliest send time booked here for a less urgent call
of the same deployment, and that call takes the urgent one's later time. The schedule keeps
the same send times, only who sends at each changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dispatcher.routing.admission import Grant

# Swapping is worth it only when it brings the call forward by at least this much (seconds).
MIN_GAIN_S = 0.02
# Under a token limit, swap only calls of about the same booked size: the schedule spaced the
# slots for the tokens booked in them, so a much bigger call in a slot would crowd a window.
TOKEN_SIZE_TOLERANCE = 0.25


@dataclass(eq=False, slots=True)
class BookedCall:
    priority: int
    grant: Grant
    delay: float  # extra wait for tokens beyond the booking (see Admission.resize)

    @property
    def due(self) -> float:
        return self.grant.send_at + self.delay


class BookedCalls:
    def __init__(self) -> None:
        self._by_deployment: dict[str, set[BookedCall]] = {}

    def add(self, call: BookedCall) -> None:
        self._by_deployment.setdefault(call.grant.deployment.id, set()).add(call)

    def discard(self, call: BookedCall) -> None:
        calls = self._by_deployment.get(call.grant.deployment.id)
        if calls is not None:
            calls.discard(call)

    def move_forward(self, call: BookedCall) -> bool:
        """Give ``call`` the earliest earlier send time booked for a less urgent call (swap)."""
        if call.due - time.time() < MIN_GAIN_S:
            return False
        best = None
        for other in self._by_deployment.get(call.grant.deployment.id, ()):
            if (
                other.priority > call.priority
                and _same_size(other.grant, call.grant)
                and other.grant.send_at + call.delay < call.due - MIN_GAIN_S
                and (best is None or other.grant.send_at < best.grant.send_at)
            ):
                best = other
        if best is None:
            return False
        call.grant.send_at, best.grant.send_at = best.grant.send_at, call.grant.send_at
        return True


def _same_size(other, call) -> bool:
    """Swapping send times keeps token schedules honest only between calls of about one size
    (in all tokens for tpm; in input and in output tokens for itpm/otpm)."""
    spec = call.spec
    if not (spec.token_interval or spec.splits_tokens):
        return True
    if not _similar(other.tokens, call.tokens):
        return False
    return not spec.splits_tokens or _similar(other.input_tokens, call.input_tokens)


def _similar(a: int, b: int) -> bool:
    return abs(a - b) <= TOKEN_SIZE_TOLERANCE * max(a, b)
