"""What the mock provider remembers between requests, shared by every route."""

from __future__ import annotations

import collections
import itertools
import os
import random
import time

from aiohttp import web

from dispatcher.mockserver.limits import RateLimits
from dispatcher.mockserver.options import MockOptions
from dispatcher.mockserver.stats import InFlight, MockStats


class MockState:
    """Everything the server remembers between requests (cleared by ``POST /mock/reset``)."""

    def __init__(self, options: MockOptions):
        self.options = options
        self.rng = random.Random(options.seed)
        self.started = time.monotonic()
        self.in_flight = InFlight()
        # Request ids stay unique across resets and restarts: random prefix, running number.
        self._id_prefix = f"req_mock_{os.urandom(4).hex()}_"
        self._ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        o = self.options
        self.stats = MockStats(self.in_flight)
        self.fail_first: collections.Counter[str] = collections.Counter()
        # Also without limits: it then admits everything but still measures the peaks.
        self.limits = RateLimits(o.rpm, o.tpm, o.itpm, o.otpm, o.window_s)
        # Anthropic prompt caching: hash of a cached prefix -> monotonic time it expires.
        self.prompt_cache: dict[str, float] = {}

    def request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    def since_start(self, now: float) -> float:
        return now - self.started

    def latency_s(self) -> float:
        o = self.options
        ms = o.latency_ms
        if o.jitter_ms:
            ms = self.rng.uniform(o.latency_ms - o.jitter_ms, o.latency_ms + o.jitter_ms)
        return max(0.0, ms) / 1000.0


STATE = web.AppKey("state", MockState)
