"""The GCRA decision itself, in Python (the memory backend; the Lua scripts mirror it).

State per limit key: ``r`` and ``t``, the theoretical times at which the request and token
schedules are free again, ``i`` and ``o`` the same for input and output tokens (itpm, otpm),
and ``p``, a pause (a provider's 429) until which nothing is sent. A request may be sent at
``s = max(r, t, i, o, p, now)``; sending it moves ``r`` to ``s + request_interval``, ``t`` to
``s + tokens * token_interval``, ``i`` to ``s + input_tokens * input_interval`` and ``o`` to
``s + output_tokens * output_interval``. Send times up to ``now + horizon`` are handed out at
once, so a worker can line up a few calls ahead.

Header credit (credit.py): ``n`` numbers the sends, ``f`` counts the calls in flight, ``cn``
is the ceiling the provider's words allow (``cw``: when it last spoke), ``mn`` the settled
ceiling since the last send, ``pr`` when the provider said its room grows, ``kn`` how much of
the room is kept for urgent calls. While its word is
fresh, sends go at ``now`` within the ceiling and not at all beyond it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.limits import credit


@dataclass(slots=True)
class ScheduleState:
    r: float = 0.0
    t: float = 0.0
    p: float = 0.0
    i: float = 0.0
    o: float = 0.0
    n: int = 0
    cn: float | None = None
    mn: float | None = None
    cw: float = -1e18
    pr: float | None = None
    kn: int = 0  # calls' worth of room kept for urgent calls, by the provider's last word
    f: int = 0  # calls in flight
    sa: int | None = None  # the older snapshot of ``n``
    sb: int | None = None  # the newer one, taken at ``tb``
    tb: float = 0.0

    @property
    def paces(self) -> tuple[float, float, float, float]:
        return (self.r, self.t, self.i, self.o)


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
    burst_s: float = 0.0,
    urgent: bool = False,
) -> tuple[list[float], float, int, bool]:
    """Send times for up to ``count`` requests (state updated), the next free time, how many
    of the sends (the first ones) go on credit, and whether an urgent call would find credit
    now.

    ``tokens`` are each request's tokens against tpm; ``input_tokens`` of them are its input
    (against itpm), the rest its output (against otpm).
    """
    intervals = (request_interval, token_interval, input_interval, output_interval)
    word_fresh = burst_s > 0 and state.p <= now and now - state.cw <= credit.CREDIT_TTL_S
    ceiling = state.cn
    if state.f <= 0 and state.mn is not None:
        # Every call answered: the replies since the last send say the room exactly.
        ceiling = state.mn if ceiling is None else max(ceiling, state.mn)
    # Nothing in flight and the room spent: one call may learn whether the room has grown.
    probe = word_fresh and state.f <= 0 and state.pr is not None and now >= state.pr
    # The room kept for urgent calls goes to any call just before the provider's room grows.
    growing = state.pr is not None and now >= state.pr - credit.RESERVE_RELEASE_S
    keep = 0 if urgent or growing else state.kn

    def on_credit(reserve: int) -> bool:
        return word_fresh and credit.allows(
            count=state.n, ceiling=ceiling, kept=reserve, intervals=intervals, paces=state.paces,
            burst_s=burst_s, now=now,
        )

    times: list[float] = []
    credited = 0
    send = max(*state.paces, state.p, now)
    while len(times) < count:
        if on_credit(keep) or (probe and not times):
            send = now
            credited += 1
        elif word_fresh:
            break  # the provider's word decides while it is fresh, not the even pace
        else:
            send = max(*state.paces, state.p, now)
            if send > now + horizon:
                break
        times.append(send)
        # A dimension without a limit keeps its old time: were it set to `send`, it would pin
        # the schedule there and a refund of the limited dimension could never take effect.
        if request_interval:
            state.r = max(state.r, send) + request_interval
        if token_interval:
            state.t = max(state.t, send) + tokens * token_interval
        if input_interval:
            state.i = max(state.i, send) + input_tokens * input_interval
        if output_interval:
            state.o = max(state.o, send) + (tokens - input_tokens) * output_interval
        state.n += 1
        send = max(*state.paces, now)
    if times:
        state.mn = None
    urgent_room = not times and not urgent and on_credit(0)
    if not times and word_fresh:
        # Room comes with replies to the calls in flight, when the provider said it grows (the
        # kept room a little before), or once its word is stale and the even pace takes over;
        # with room left but a schedule too far ahead, when that schedule is back within reach.
        send = max(send, state.cw + credit.CREDIT_TTL_S)
        if state.f > 0:
            send = min(send, now + credit.RECHECK_S)
        if state.pr is not None:
            send = min(send, max(now, state.pr - credit.RESERVE_RELEASE_S))
        if ceiling is not None and state.n + 1 <= ceiling - keep:
            send = min(send, max(now, max(state.paces) - burst_s))
    return times, send, credited, urgent_room


def count_in_flight(state: ScheduleState, sends: int, now: float) -> int:
    """Add ``sends`` to the calls in flight; returns how many were in flight before them.

    What a dead worker never counted out heals: no call is in flight longer than a snapshot
    period, so the count never exceeds the sends since the older snapshot.
    """
    before_sends = state.n - sends
    if state.sa is not None:
        state.f = min(state.f, before_sends - state.sa)
    in_flight = state.f
    state.f += sends
    if now - state.tb > credit.FLIGHT_SNAPSHOT_S:
        state.sa = state.sb if state.sb is not None else before_sends
        state.sb, state.tb = before_sends, now
    return in_flight


def shift(value: float, delta: float, *, now: float, floor_offset: float) -> float:
    """Move a schedule by ``delta`` seconds; a refund never reaches before ``now + floor_offset``.

    Send times up to ``now + horizon`` may already be handed out; pulling a schedule earlier
    than that would let new reservations overlap them.
    """
    if delta >= 0:
        return max(value, now) + delta if value < now else value + delta
    return min(value, max(value + delta, now + floor_offset))


def observe(state: ScheduleState, word: credit.Word, now: float) -> None:
    """Keep the ceiling a provider's reply allows (the higher of two fresh words), the lowest
    settled one since the last send, and when it said its room grows."""
    fresh = now - state.cw <= credit.CREDIT_TTL_S
    state.cn = max(word.ceiling, state.cn) if fresh and state.cn is not None else word.ceiling
    state.mn = word.settled if state.mn is None else min(state.mn, word.settled)
    if word.reset_s is not None:
        state.pr = now + word.reset_s
    state.kn = word.kept
    state.cw = now
