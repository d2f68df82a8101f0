"""Header credit: spending the room a provider's rate-limit headers say it has.

The even pace (schedule.py) lets no window hold more than its share of a limit, whatever the
provider's window is. A provider counting per minute allows the whole minute at once, though:
under the even pace a short batch takes 1.5x its ideal time, and an urgent call waits for its
slot while the provider has room.

Every reservation numbers its sends: the key's requests are counted fleet-wide (``n`` in the
schedule), and so are its calls in flight (``f``). A reply's headers say how much room the
provider had left after counting that call (requests, and tokens, counted in calls of that
call's size), so sends up to the call's number plus that room fit, less the calls that were in
flight when it was booked (any of them may reach the provider after it, uncounted) and a margin
(the headroom). A later send counts by its number; the room only grows as the provider's window
moves on, so a ceiling stays true. A send within the ceiling goes at once instead of at its
even-pace time, and while the provider's word is fresh (``CREDIT_TTL_S``) no send goes beyond
it: even-pace sends between bursts would stay in a sliding window and shrink the next burst.
Sends still move the even pace on: it bounds a burst (never more than ``burst_s`` ahead of
now) and takes over, late by the time the bursts took from it, when the word goes stale.

Once every call has been answered, the replies since the last send tell the room exactly: the
lowest of their ceilings without the in-flight part (``mn``) holds. When that room is spent too, no reply will say when it grows again: one probe call may go when
the last reply said the provider's room grows (``pr``, its reset time), and its reply says
how much there is.

No credit is taken where the provider's stated limit is below the configured per-minute one
(it counts over a shorter window, where the even pace is right), nor from a reply that does
not speak of every limited dimension. A part of each ceiling (``urgent_reserve``) is left to
urgent calls until shortly before the provider's room grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dispatcher.limits.spec import LimitSpec
from dispatcher.providers.base import RateLimitInfo

# A ceiling older than this is no longer trusted (another user of the key may have used it).
CREDIT_TTL_S = 60.0
# No call is in flight longer than this (seconds): the in-flight count of a key never exceeds
# its sends of the last one to two of these periods, which heals what a dead worker left.
FLIGHT_SNAPSHOT_S = 600.0
# A key out of room with calls in flight is asked again this soon: their replies may give room.
RECHECK_S = 0.05
# The room kept for urgent calls goes to any call this long before the provider said its room
# grows: an urgent call arriving later waits at most that long, and no room is left unused.
RESERVE_RELEASE_S = 1.0


@dataclass(frozen=True, slots=True)
class Position:
    """Where a send stands in its key's count of requests once counted, and how many of the
    key's calls were in flight when it was booked: any of them may reach the provider after
    it, uncounted in the room a reply to it reports."""

    requests: int
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class Word:
    """What a reply's rate-limit headers allow: ``ceiling``, the count of requests up to which
    sends fit, and ``reset_s``, when the provider said its room next grows (None: not said).

    ``settled`` is the ceiling without the calls that were in flight: once every call has been
    answered, the lowest of them over the replies since the last send is true (the call the
    provider counted last is among those replies, and its room counts every call).
    """

    ceiling: float
    settled: float
    reset_s: float | None = None
    # Calls' worth of the room kept for urgent calls, in the limit that binds first.
    kept: int = 0


@dataclass(frozen=True, slots=True)
class CallSize:
    """What one call counts against each limit: 1 request, its tokens, input and output tokens."""

    tokens: int
    input_tokens: int

    def per_dimension(self) -> tuple[float, float, float, float]:
        return (1, max(1, self.tokens), max(1, self.input_tokens), max(1, self.tokens - self.input_tokens))


def read_word(spec: LimitSpec, sent: Position, size: CallSize, info: RateLimitInfo) -> Word | None:
    """What a reply to the send at ``sent`` allows; None when it gives no credit (the spec
    takes none, a limited dimension is not spoken of, or the provider counts over a shorter
    window than the configured limits). Token room counts in calls of this one's size."""
    if spec.burst_s <= 0:
        return None
    dimensions = (
        (spec.request_interval, spec.rpm, info.remaining_requests, info.limit_requests),
        (spec.token_interval, spec.tpm, info.remaining_tokens, info.limit_tokens),
        (spec.input_interval, spec.itpm, info.remaining_input_tokens, info.limit_input_tokens),
        (spec.output_interval, spec.otpm, info.remaining_output_tokens, info.limit_output_tokens),
    )
    calls: list[float] = []
    bulk_calls: list[float] = []
    for (interval, configured, remaining, stated), margin, kept, per_call in zip(
        dimensions, spec.credit_margin, spec.urgent_reserve, size.per_dimension()
    ):
        if not interval:
            continue
        if remaining is None or configured is None:
            return None
        room = remaining
        if stated is not None:
            if stated < configured - margin:
                return None  # a shorter window than a minute, or a lower limit than configured
            room = min(remaining, configured - (stated - remaining))  # the configured limit binds
        calls.append(math.floor((room - margin) / per_call))
        bulk_calls.append(math.floor((room - margin - kept) / per_call))
    if not calls:
        return None
    settled = sent.requests + min(calls)
    resets = [r for r in (info.reset_requests_s, info.reset_tokens_s) if r is not None]
    return Word(settled - sent.in_flight, settled, max(resets) if resets else None,
                max(0, min(calls) - min(bulk_calls)))


def allows(
    *, count: float, ceiling: float | None, kept: int, intervals: tuple[float, ...],
    paces: tuple[float, ...], burst_s: float, now: float,
) -> bool:
    """Whether a send may go now on credit (the RESERVE script's ``credit`` in Python): within
    the ceiling (less what is kept), and no schedule more than ``burst_s`` ahead."""
    if ceiling is None or count + 1 > ceiling - kept:
        return False
    return all(not interval or pace - now < burst_s for interval, pace in zip(intervals, paces))
