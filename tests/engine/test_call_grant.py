"""CallGrant: the wait for a booked send time, a 429 pause waited out, places freed once."""

from __future__ import annotations

import asyncio
import time

from dispatcher.engine.call_grant import CallGrant
from dispatcher.engine.counters import EngineStats
from dispatcher.scheduling.urgent import BookedCalls
from tests.routing.test_admission import admission_for


def call_grant(admission, grant, stats, booked=None, priority=5) -> CallGrant:
    return CallGrant(grant, priority=priority, delay=0.0, admission=admission,
                     booked=booked or BookedCalls(), stats=stats, late_tolerance_s=1.0)


def test_due_waits_for_the_booked_send_time():
    admission = admission_for({"rpm": 600}, lookahead_s=2.0)  # one call every 0.1 s

    async def scenario():
        grants = await admission.acquire("chat", 3, 10)
        started = time.monotonic()
        await call_grant(admission, grants[-1], EngineStats()).due()
        return grants, time.monotonic() - started

    grants, waited = asyncio.run(scenario())
    assert grants[-1].send_at - grants[0].send_at > 0.15
    assert waited > 0.15


def test_a_429_pause_is_waited_out_and_the_call_booked_again():
    admission = admission_for({"rpm": 6000})
    stats = EngineStats()

    async def scenario():
        [grant] = await admission.acquire("chat", 1, 10)
        await admission.pause(grant.spec, 0.3)  # as a 429 with Retry-After would
        started = time.monotonic()
        call = call_grant(admission, grant, stats)
        await call.due()
        return time.monotonic() - started, call

    waited, call = asyncio.run(scenario())
    assert waited >= 0.28 and stats.rebooked == 1
    assert call.deployment.id == "d0"


def test_an_urgent_call_takes_a_less_urgent_calls_earlier_send_time():
    admission = admission_for({"rpm": 600}, lookahead_s=2.0)
    stats, booked = EngineStats(), BookedCalls()

    async def scenario():
        _now, bulk_grant, urgent_grant = await admission.acquire("chat", 3, 10)  # 0, 0.1 s, 0.2 s
        bulk = asyncio.create_task(call_grant(admission, bulk_grant, stats, booked, priority=9).due())
        await asyncio.sleep(0)  # the bulk call is booked and waiting
        await call_grant(admission, urgent_grant, stats, booked, priority=0).due()
        urgent_sent = time.time()
        await bulk
        return urgent_sent, time.time()

    urgent_sent, bulk_sent = asyncio.run(scenario())
    assert stats.moved_forward == 1 and urgent_sent < bulk_sent


def test_places_are_freed_once_whichever_way_the_call_ends():
    admission = admission_for({"max_parallel_requests": 1})

    async def scenario():
        [grant] = await admission.acquire("chat", 1, 10)
        full = await admission.acquire("chat", 1, 10)
        call = call_grant(admission, grant, EngineStats())
        await call.release()
        call.close()  # a second way out frees nothing more
        again = await admission.acquire("chat", 2, 10)
        return full, again

    full, again = asyncio.run(scenario())
    assert full.reason == "parallel"  # the one place was held
    assert len(again) == 1  # freed once: one place, not two
