"""What the mock provider counts: requests, answers, duplicates, billed usage, concurrency.

Tests and benchmarks read these through ``GET /mock/stats`` to see the dispatcher from the
provider's side: how many calls it really made, whether it paid twice for a prompt, how many
calls it had open at once.
"""

from __future__ import annotations

import collections
from array import array
from typing import Any


class InFlight:
    """Requests being answered right now. A gauge, not a counter: it survives /mock/reset."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class MockStats:
    """Counters since the server started or was last reset.

    A request reports to the ``MockStats`` it entered on, even if a reset happens while it is
    being answered, so every reported set is self-consistent (``completed <= requests``).
    Times are seconds since the server started (monotonic clock), also across resets.
    """

    def __init__(self, in_flight: InFlight | None = None):
        self._in_flight = in_flight or InFlight()
        self.requests = 0
        self.by_status: collections.Counter[int] = collections.Counter()
        self.max_in_flight = self._in_flight.count
        self.completed = 0
        self.duplicates = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.total_tokens = 0
        self.fingerprint_counts: collections.Counter[str] = collections.Counter()
        # Typed arrays: 8 bytes an entry, so long benchmark runs do not bloat the server.
        self.received_at = array("d")
        # fingerprint -> wall-clock time of its first request (latency from a client's submit)
        self.first_seen: dict[str, float] = {}
        self._admitted_times = array("d")
        self._admitted_tokens = array("q")

    def enter(self, at: float) -> None:
        """A chat request arrived ``at`` seconds after start."""
        self.requests += 1
        self.received_at.append(at)
        in_flight = self._in_flight
        in_flight.count += 1
        if in_flight.count > self.max_in_flight:
            self.max_in_flight = in_flight.count

    def seen(self, fingerprint: str, wall_time: float) -> None:
        """A request for this prompt reached the server (first time kept)."""
        self.first_seen.setdefault(fingerprint, wall_time)

    def leave(self, status: int) -> None:
        """The request entered on this object was answered with ``status``."""
        self._in_flight.count -= 1
        self.by_status[status] += 1

    def admitted(self, at: float, tokens: int) -> None:
        """The request passed the rate limits, charged ``tokens``."""
        self._admitted_times.append(at)
        self._admitted_tokens.append(tokens)

    def completion(self, fingerprint: str, usage: dict[str, int]) -> None:
        """A 200 with a completion is being sent: the provider bills it."""
        self.completed += 1
        if fingerprint in self.fingerprint_counts:
            self.duplicates += 1
        self.fingerprint_counts[fingerprint] += 1
        self.prompt_tokens += usage["prompt_tokens"]
        self.completion_tokens += usage["completion_tokens"]
        self.total_tokens += usage["total_tokens"]

    def as_dict(self, *, detail: bool, peak_requests: int, peak_tokens: int) -> dict[str, Any]:
        """The ``/mock/stats`` document; per-prompt counts and timelines only with ``detail``."""
        data: dict[str, Any] = {
            "requests": self.requests,
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "completed": self.completed,
            "duplicates": self.duplicates,
            "unique_completed": len(self.fingerprint_counts),
            "in_flight": self._in_flight.count,
            "max_in_flight": self.max_in_flight,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens,
            },
            "rate_limited": self.by_status.get(429, 0),
            "peak_requests_in_window": peak_requests,
            "peak_tokens_in_window": peak_tokens,
        }
        if detail:
            data["fingerprint_counts"] = dict(self.fingerprint_counts)
            data["admitted_at"] = [
                [round(at, 4), tokens] for at, tokens in zip(self._admitted_times, self._admitted_tokens)
            ]
            data["received_at"] = [round(at, 4) for at in self.received_at]
            data["first_seen"] = self.first_seen
        return data
