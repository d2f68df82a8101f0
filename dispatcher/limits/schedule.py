"""The GCRA decision itself, in Python (the memory backend; the Lua scripts mirror it).

State per limit key: ``r`` and ``t``, the theoretical times at which the request and token
schedules are free again, ``i`` and ``o`` the same for input and output tokens (itpm, otpm),
and ``p``, a pause (a provider's 429) until which nothing is sent. A request may be sent at
``s = max(r, t, i, o, p, now)``; sending it moves ``r`` to ``s + request_interval``, ``t`` to
``s + tokens * token_interval``, ``i`` to ``s + input_tokens * input_interval`` and ``o`` to
``s + output_tokens * output_interval``. Send times up to ``now + horizon`` are handed out at
once, so a worker can line up a few calls ahead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ScheduleState:
    r: float = 0.0
    t: float = 0.0
    p: float = 0.0
    i: float = 0.0
    o: float = 0.0


def plan(
    state: ScheduleState,
    *,
    now: float,
    count: int,
    tokens: int,
    request_interval: float,
    token_interval: float,
    horizon: float,
    input_tokens: int = 0,
    input_interval: float = 0.0,
    output_interval: float = 0.0,
) -> tuple[list[float], float]:
    """Send times for up to ``count`` requests (state updated), and the next free time.

    ``tokens`` are each request's tokens against tpm; ``input_tokens`` of them are its input
    (against itpm), the rest its output (against otpm).
    """
    times: list[float] = []
    output_tokens = tokens - input_tokens
    start = max(state.r, state.t, state.i, state.o, state.p, now)
    send = start
    while len(times) < count and send <= now + horizon:
        times.append(send)
        # A dimension without a limit keeps its old time: were it set to `send`, it would pin
        # the schedule there and a refund of the limited dimension could never take effect.
        if request_interval:
            state.r = send + request_interval
        if token_interval:
            state.t = send + tokens * token_interval
        if input_interval:
            state.i = send + input_tokens * input_interval
        if output_interval:
            state.o = send + output_tokens * output_interval
        send = max(state.r, state.t, state.i, state.o, now)
    return times, send


def shift(value: float, delta: float, *, now: float, floor_offset: float) -> float:
    """Move a schedule by ``delta`` seconds; a refund never reaches before ``now + floor_offset``.

    Send times up to ``now + horizon`` may already be handed out; pulling a schedule earlier
    than that would let new reservations overlap them.
    """
    if delta >= 0:
        return max(value, now) + delta if value < now else value + delta
    return min(value, max(value + delta, now + floor_offset))
