"""What the mock provider counts: requests, answers, duplicates, usage, concurrency."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field


@dataclass
class MockStats:
    requests: int = 0
    by_status: collections.Counter = field(default_factory=collections.Counter)
    completed: int = 0
    duplicates: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    fingerprint_counts: collections.Counter = field(default_factory=collections.Counter)
    admitted_at: list = field(default_factory=list)
    received_at: list = field(default_factory=list)

    def enter(self, at: float) -> None:
        self.requests += 1
        self.received_at.append(round(at, 4))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, status: int) -> None:
        self.in_flight -= 1
        self.by_status[str(status)] += 1

    def completion(self, fingerprint: str, usage: dict[str, int]) -> None:
        self.completed += 1
        if self.fingerprint_counts[fingerprint]:
            self.duplicates += 1
        self.fingerprint_counts[fingerprint] += 1
        self.prompt_tokens += usage["prompt_tokens"]
        self.completion_tokens += usage["completion_tokens"]
        self.total_tokens += usage["total_tokens"]

    def as_dict(self, *, detail: bool, peak_requests: int, peak_tokens: int) -> dict:
        data = {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "completed": self.completed,
            "duplicates": self.duplicates,
            "unique_completed": len(self.fingerprint_counts),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens,
            },
            "rate_limited": self.by_status.get("429", 0),
            "peak_requests_in_window": peak_requests,
            "peak_tokens_in_window": peak_tokens,
        }
        if detail:
            data["fingerprint_counts"] = dict(self.fingerprint_counts)
            data["admitted_at"] = self.admitted_at
            data["received_at"] = self.received_at
        return data
