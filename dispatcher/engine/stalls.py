"""Noticing when this process stopped running: SIGSTOP, a VM paused or migrated, a long GC
pause, an event loop blocked by CPU work.

A provider call that spanned such a stall may have been answered while nobody was reading:
its timeout says nothing about the provider, so it must not count as a provider timeout nor
cool the deployment down.
"""

from __future__ import annotations

import asyncio
import collections
import time

# Stalls longer than TICK_S + threshold_s are seen; while calls are in flight the watch
# wakes TICK_S apart for it. An idle worker does not: a wake-up costs a parked thread about
# as much CPU as the rest of its idle work, and no call can span a stall then.
TICK_S = 0.25


class StallWatch:
    def __init__(self, threshold_s: float = 1.0):
        self.threshold_s = threshold_s
        self._last_tick = time.monotonic()
        self._stalls: collections.deque[tuple[float, float]] = collections.deque(maxlen=64)
        self._calls = 0  # calls in flight: the watch ticks only while there are some
        self._resumed = asyncio.Event()

    def call_started(self) -> None:
        if self._calls == 0:
            self._last_tick = time.monotonic()  # the idle time before is no stall of a call
            self._resumed.set()
        self._calls += 1

    def call_ended(self) -> None:
        self._calls -= 1

    async def run(self) -> None:
        while True:
            if self._calls == 0:
                self._resumed.clear()
                await self._resumed.wait()
            before = time.monotonic()
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            if now - before > TICK_S + self.threshold_s:
                self._stalls.append((before, now))
            self._last_tick = now

    def stalled_between(self, start: float, end: float) -> bool:
        """Did the process stall between these ``time.monotonic()`` readings (taken while a
        call was in flight: between ``call_started`` and ``call_ended``)?"""
        if time.monotonic() - self._last_tick > TICK_S + self.threshold_s:
            return True  # stalled until just now: the watch has not run since it woke
        return any(begin < end and finish > start for begin, finish in self._stalls)
