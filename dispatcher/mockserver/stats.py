"""What the mock provider counts: requests, answers, duplicates, billed usage, concurrency.

Tests and benchmarks read these through ``GET /mock/stats`` to see the dispatcher from the
provider's side: how many calls it really made, whether it paid twice for a prompt, how many
calls it had open at once. The totals cover every route; ``by_route`` splits the calls by the
API they spoke (``openai.chat``, ``anthropic.messages``, ``azure.chat`` ...).
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


class RouteStats:
    """The counters of one route (``anthropic.messages`` ...)."""

    __slots__ = ("requests", "by_status", "completed", "duplicates")

    def __init__(self) -> None:
        self.requests = 0
        self.by_status: collections.Counter[int] = collections.Counter()
        self.completed = 0
        # Completions on this route of a prompt already completed (on any route).
        self.duplicates = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "completed": self.completed,
            "duplicates": self.duplicates,
            "rate_limited": self.by_status.get(429, 0),
        }


class BatchCounts:
    """One provider's batch traffic: uploads, creations, lines (per batch), and lines whose
    prompt an earlier batch already carried (a dispatcher that resubmits pays twice)."""

    __slots__ = ("files_uploaded", "batches_created", "lines", "duplicate_lines", "cancels", "by_batch",
                 "_fingerprints")

    def __init__(self) -> None:
        self.files_uploaded = 0
        self.batches_created = 0
        self.lines = 0
        self.duplicate_lines = 0
        self.cancels = 0
        self.by_batch: dict[str, int] = {}
        self._fingerprints: set[str] = set()

    def created(self, batch_id: str, fingerprints: list[str]) -> None:
        self.batches_created += 1
        self.lines += len(fingerprints)
        self.by_batch[batch_id] = len(fingerprints)
        seen = self._fingerprints
        self.duplicate_lines += sum(1 for fp in set(fingerprints) if fp in seen)
        seen.update(fingerprints)

    def as_dict(self) -> dict[str, Any]:
        return {"files_uploaded": self.files_uploaded, "batches_created": self.batches_created,
                "lines": self.lines, "duplicate_lines": self.duplicate_lines, "cancels": self.cancels,
                "by_batch": dict(self.by_batch)}


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
        self.cache_creation_input_tokens = 0
        self.cache_read_input_tokens = 0
        self.by_route: dict[str, RouteStats] = {}
        self.batches = {"openai": BatchCounts(), "anthropic": BatchCounts()}
        self.fingerprint_counts: collections.Counter[str] = collections.Counter()
        # Typed arrays: 8 bytes an entry, so long benchmark runs do not bloat the server.
        self.received_at = array("d")
        # fingerprint -> wall-clock time of its first request (latency from a client's submit)
        self.first_seen: dict[str, float] = {}
        self._admitted_times = array("d")
        self._admitted_tokens = array("q")
        self._admitted_input = array("q")
        self._admitted_output = array("q")

    def _route(self, route: str) -> RouteStats:
        found = self.by_route.get(route)
        if found is None:
            found = self.by_route[route] = RouteStats()
        return found

    def enter(self, at: float, route: str) -> None:
        """A provider call arrived on ``route``, ``at`` seconds after start."""
        self.requests += 1
        self._route(route).requests += 1
        self.received_at.append(at)
        in_flight = self._in_flight
        in_flight.count += 1
        if in_flight.count > self.max_in_flight:
            self.max_in_flight = in_flight.count

    def seen(self, fingerprint: str, wall_time: float) -> None:
        """A request for this prompt reached the server (first time kept)."""
        self.first_seen.setdefault(fingerprint, wall_time)

    def leave(self, status: int, route: str) -> None:
        """The request entered on this object was answered with ``status``."""
        self._in_flight.count -= 1
        self.by_status[status] += 1
        self._route(route).by_status[status] += 1

    def admitted(self, at: float, tokens: int, input_tokens: int, output_tokens: int) -> None:
        """The request passed the rate limits, charged ``tokens`` against tpm, and input and
        output tokens against itpm and otpm (output as answered, not its budget)."""
        self._admitted_times.append(at)
        self._admitted_tokens.append(tokens)
        self._admitted_input.append(input_tokens)
        self._admitted_output.append(output_tokens)

    def completion(self, fingerprint: str, usage: dict[str, int], route: str) -> None:
        """A 200 with a completion is being sent: the provider bills it.

        ``usage`` in OpenAI's terms (prompt tokens include cached ones), with Anthropic's
        ``cache_creation_input_tokens`` and ``cache_read_input_tokens`` when it has them.
        """
        self.completed += 1
        counts = self._route(route)
        counts.completed += 1
        if fingerprint in self.fingerprint_counts:
            self.duplicates += 1
            counts.duplicates += 1
        self.fingerprint_counts[fingerprint] += 1
        self.prompt_tokens += usage["prompt_tokens"]
        self.completion_tokens += usage["completion_tokens"]
        self.total_tokens += usage["total_tokens"]
        if len(usage) > 3:
            self.cache_creation_input_tokens += usage.get("cache_creation_input_tokens", 0)
            self.cache_read_input_tokens += usage.get("cache_read_input_tokens", 0)

    def as_dict(self, *, detail: bool, peaks: dict[str, int]) -> dict[str, Any]:
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
                "cache_creation_input_tokens": self.cache_creation_input_tokens,
                "cache_read_input_tokens": self.cache_read_input_tokens,
            },
            "rate_limited": self.by_status.get(429, 0),
            **peaks,
            "by_route": {route: counts.as_dict() for route, counts in sorted(self.by_route.items())},
            "batches": {provider: counts.as_dict() for provider, counts in self.batches.items()},
        }
        if detail:
            data["fingerprint_counts"] = dict(self.fingerprint_counts)
            data["admitted_at"] = [
                [round(at, 4), tokens] for at, tokens in zip(self._admitted_times, self._admitted_tokens)
            ]
            data["admitted_input_output"] = [
                [i, o] for i, o in zip(self._admitted_input, self._admitted_output)
            ]
            data["received_at"] = [round(at, 4) for at in self.received_at]
            data["first_seen"] = self.first_seen
        return data
