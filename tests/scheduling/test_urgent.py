"""An urgent call takes the earliest send time booked for a less urgent one."""

from __future__ import annotations

import time

from dispatcher.limits.spec import LimitSpec
from dispatcher.routing.admission import Grant
from dispatcher.scheduling.urgent import BookedCall, BookedCalls
from tests.routing.test_admission import admission_for

DEPLOYMENT = admission_for({})._deployments.group("chat")[0]
RPM_ONLY = LimitSpec("k", 600, None, 0.1, 0.0)
TPM = LimitSpec("k", None, 6000, 0.0, 0.01)


def call(priority: int, in_s: float, spec: LimitSpec = RPM_ONLY, tokens: int = 100) -> BookedCall:
    return BookedCall(priority, Grant(DEPLOYMENT, spec, time.time() + in_s, tokens), 0.0)


def test_urgent_call_swaps_with_the_earliest_less_urgent_one():
    booked = BookedCalls()
    waiting = [call(9, 0.1), call(9, 0.2), call(0, 0.05), call(5, 0.3)]
    for c in waiting:
        booked.add(c)
    urgent = call(1, 0.5)
    times = {id(c): c.grant.send_at for c in waiting}
    assert booked.move_forward(urgent)
    # It took the 0.1 s slot of the first priority-9 call (not the priority-0 one at 0.05 s),
    # which now waits for the urgent call's old 0.5 s slot.
    assert urgent.grant.send_at == times[id(waiting[0])]
    assert waiting[0].grant.send_at > times[id(waiting[3])]
    assert waiting[2].grant.send_at == times[id(waiting[2])]


def test_no_swap_when_nothing_less_urgent_waits_earlier_or_sizes_differ_under_a_token_limit():
    booked = BookedCalls()
    booked.add(call(5, 0.1))
    assert not booked.move_forward(call(5, 0.5))  # same priority: first come, first served
    assert not booked.move_forward(call(0, 0.01))  # already due: nothing to gain
    booked = BookedCalls()
    booked.add(call(9, 0.1, TPM, tokens=100))
    assert not booked.move_forward(call(0, 0.5, TPM, tokens=1000))  # would crowd a token window
    assert booked.move_forward(call(0, 0.5, TPM, tokens=110))
