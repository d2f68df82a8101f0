"""One body of tests for both limit backends: Redis (fleet) and memory (embedded)."""

from __future__ import annotations

import asyncio
import time

import pytest

from dispatcher.limits.backend import Blocked, Reservation
from dispatcher.limits.spec import LimitSpec


def spec(key: str, rpm: int | None = None, tpm: int | None = None) -> LimitSpec:
    return LimitSpec(key, rpm, tpm, 60.0 / rpm if rpm else 0.0, 60.0 / tpm if tpm else 0.0)


def run(coroutine):
    return asyncio.run(coroutine)


def test_reservations_are_spaced_and_bounded_by_the_lookahead(make_backend):
    async def scenario():
        backend = make_backend()
        limit = spec("a", rpm=600)  # one every 0.1 s
        first = await backend.reserve([limit], 100, 10, 0.45)
        second = await backend.reserve([limit], 100, 10, 0.45)
        await backend.aclose()
        return first, second

    first, second = run(scenario())
    assert isinstance(first, Reservation) and len(first.send_times) == 5
    gaps = [b - a for a, b in zip(first.send_times, first.send_times[1:])]
    assert gaps == pytest.approx([0.1] * 4, abs=1e-5)  # times travel as text with 6 decimals
    # The next caller continues the same schedule: it is told when there is room again
    # (or, if the clock moved on meanwhile, gets that very slot).
    next_slot = second.until if isinstance(second, Blocked) else second.local_send_time(0)
    assert next_slot == pytest.approx(first.local_send_time(4) + 0.1, abs=0.02)


def test_full_candidates_are_skipped_and_blocked_says_until_when(make_backend):
    async def scenario():
        backend = make_backend()
        slow, fast = spec("slow", rpm=6), spec("fast", rpm=600)  # 10 s and 0.1 s apart
        a = await backend.reserve([slow, fast], 1, 1, 0.0)
        b = await backend.reserve([slow, fast], 1, 1, 0.0)  # slow is full: falls to fast
        c = await backend.reserve([slow], 1, 1, 0.0)
        await backend.aclose()
        return a, b, c

    a, b, c = run(scenario())
    assert isinstance(a, Reservation) and a.candidate == 0
    assert isinstance(b, Reservation) and b.candidate == 1
    assert isinstance(c, Blocked) and 9.0 < c.until - time.time() <= 10.1


def test_pause_blocks_the_key_for_everyone(make_backend):
    async def scenario():
        backend = make_backend()
        limit = spec("p", rpm=6000)
        await backend.pause(limit, 2.0)
        blocked = await backend.reserve([limit], 1, 1, 0.5)
        usage = await backend.usage([limit])
        await backend.aclose()
        return blocked, usage

    blocked, usage = run(scenario())
    assert isinstance(blocked, Blocked) and 1.5 < blocked.until - time.time() <= 2.1
    assert 1.5 < usage[0].paused_for_s <= 2.0


def test_refund_gives_capacity_back_but_not_before_the_lookahead(make_backend):
    async def scenario():
        backend = make_backend()
        limit = spec("r", rpm=60)  # one per second
        await backend.reserve([limit], 1, 1, 0.0)
        refused = await backend.reserve([limit], 1, 1, 0.2)
        await backend.adjust([(limit, -1, 0)], 0.2)
        again = await backend.reserve([limit], 1, 1, 0.2)
        await backend.aclose()
        return refused, again

    refused, again = run(scenario())
    assert isinstance(refused, Blocked)
    assert isinstance(again, Reservation)
    assert again.local_send_time(0) - time.time() <= 0.25


def test_usage_counts_what_was_reserved_this_minute(make_backend):
    async def scenario():
        backend = make_backend()
        limit = spec("u", rpm=6000, tpm=600000)
        await backend.reserve([limit], 3, 100, 1.0)
        usage = await backend.usage([limit])
        await backend.aclose()
        return usage[0]

    usage = run(scenario())
    if usage.requests_this_minute != 3:  # the minute may have turned between the two calls
        assert usage.requests_this_minute == 0
    else:
        assert usage.tokens_this_minute == 300


def test_many_processes_reserving_at_once_never_overlap(redis_server, redis_namespace):
    """The Lua script is the only writer: concurrent reservers share one schedule."""
    from dispatcher.limits.redis_backend import RedisLimitBackend

    limit = spec("shared", rpm=1200)  # 0.05 s apart

    async def reserver():
        backend = RedisLimitBackend(redis_server, redis_namespace)
        times = []
        while len(times) < 6:
            result = await backend.reserve([limit], 3, 1, 0.3)
            if isinstance(result, Reservation):
                times += result.send_times
            else:
                await asyncio.sleep(max(0.0, result.until - time.time()))
        await backend.aclose()
        return times

    async def scenario():
        return await asyncio.gather(*(reserver() for _ in range(8)))

    all_times = sorted(t for times in run(scenario()) for t in times)
    gaps = [b - a for a, b in zip(all_times, all_times[1:])]
    assert len(all_times) >= 48
    assert min(gaps) >= 0.05 - 1e-6


def test_a_thousand_concurrent_bookings_wait_for_a_connection_instead_of_failing(make_backend):
    """A worker has hundreds of calls that may book or settle at the same moment."""
    backend = make_backend()
    limit = spec("many", rpm=6_000_000)

    async def scenario():
        results = await asyncio.gather(*(backend.reserve([limit], 1, 10, 1.0) for _ in range(1000)))
        await backend.aclose()
        return results

    results = run(scenario())
    assert all(isinstance(r, Reservation) and len(r.send_times) == 1 for r in results)


def test_given_back_reservations_of_an_rpm_only_limit_free_the_schedule(make_backend):
    """A limit without tpm must not let its (unlimited) token side pin the schedule."""
    backend = make_backend()
    limit = spec("rpm-only", rpm=600)  # one every 0.1 s

    async def scenario():
        first = await backend.reserve([limit], 64, 100, 5.0)
        await backend.adjust([(limit, -1, -100)] * len(first.send_times), 0.5)
        again = await backend.reserve([limit], 64, 100, 5.0)
        await backend.aclose()
        return first, again

    first, again = run(scenario())
    assert len(first.send_times) >= 49
    # Given back down to the lookahead (0.5 s): about 45 of the next 5 s are free again.
    assert len(again.send_times) >= 44
