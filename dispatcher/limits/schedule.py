"""The GCRA decision itself, in Python (the memory backend; the Lua script mirrors it).

State per limit key: ``r`` and ``t``, the theoretical times at which the request and token
schedules are free again, and ``p``, a pause (a provider's 429) until which nothing is sent.
A request may be sent at ``s = max(r, t, p, now)``; sending it moves ``r`` to
``s + request_interval`` and ``t`` to ``s + tokens * token_interval``. Send times up to
``now + horizon`` are handed out at once, so a worker can line up a few calls ahead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ScheduleState:
    r: float = 0.0
    t: float = 0.0
    p: float = 0.0


def plan(
    state: ScheduleState,
    *,
    now: float,
    count: int,
    tokens: int,
    request_interval: float,
    token_interval: float,
    horizon: float,
) -> tuple[list[float], float]:
    """Send times for up to ``count`` requests (state updated), and the next free time."""
    times: list[float] = []
    start = max(state.r, state.t, state.p, now)
    send = start
    while len(times) < count and send <= now + horizon:
        times.append(send)
        # A dimension without a limit keeps its old time: were it set to `send`, it would pin
        # the schedule there and a refund of the limited dimension could never take effect.
        if request_interval:
            state.r = send + request_interval
        if token_interval:
            state.t = send + tokens * token_interval
        send = max(state.r, state.t, now)
    return times, send


def shift(value: float, delta: float, *, now: float, floor_offset: float) -> float:
    """Move a schedule by ``delta`` seconds; a refund never reaches before ``now + floor_offset``.

    Send times up to ``now + horizon`` may already be handed out; pulling a schedule earlier
    than that would let new reservations overlap them.
    """
    if delta >= 0:
        return max(value, now) + delta if value < now else value + delta
    return min(value, max(value + delta, now + floor_offset))
