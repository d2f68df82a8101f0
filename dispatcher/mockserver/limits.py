"""Sliding-window request and token limits, as a strict provider enforces them."""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass


@dataclass(slots=True)
class Verdict:
    admitted: bool
    retry_after_s: float = 0.0
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float = 0.0
    reset_tokens_s: float = 0.0


class SlidingWindowLimiter:
    """Admits a request only if the last ``window_s`` seconds leave room for it.

    Rejected requests are not counted. Peaks of admitted requests and tokens in any window
    are tracked at each admission (the window's content is exact at those moments).
    """

    def __init__(self, rpm: int | None, tpm: int | None, window_s: float):
        self.rpm = rpm
        self.tpm = tpm
        self.window_s = window_s
        self._events: collections.deque[tuple[float, int]] = collections.deque()
        self._tokens = 0
        self.peak_requests = 0
        self.peak_tokens = 0

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._events and self._events[0][0] <= horizon:
            _, tokens = self._events.popleft()
            self._tokens -= tokens

    def check(self, now: float, tokens: int) -> Verdict:
        """Admit (and record) or refuse a request costing ``tokens`` at time ``now``."""
        self._expire(now)
        requests_ok = self.rpm is None or len(self._events) + 1 <= self.rpm
        tokens_ok = self.tpm is None or self._tokens + tokens <= self.tpm
        if requests_ok and tokens_ok:
            self._events.append((now, tokens))
            self._tokens += tokens
            self.peak_requests = max(self.peak_requests, len(self._events))
            self.peak_tokens = max(self.peak_tokens, self._tokens)
            return self._verdict(now, True, 0.0)
        wait = 0.0
        if not requests_ok:
            excess = len(self._events) + 1 - self.rpm
            wait = max(wait, self._events[excess - 1][0] + self.window_s - now)
        if not tokens_ok:
            wait = max(wait, self._time_until_tokens_fit(now, tokens))
        return self._verdict(now, False, wait)

    def _time_until_tokens_fit(self, now: float, tokens: int) -> float:
        if tokens > self.tpm:
            return self.window_s  # can never fit; tell the client to back off a whole window
        freed = 0
        needed = self._tokens + tokens - self.tpm
        for at, used in self._events:
            freed += used
            if freed >= needed:
                return max(0.0, at + self.window_s - now)
        return self.window_s

    def _verdict(self, now: float, admitted: bool, wait: float) -> Verdict:
        oldest = self._events[0][0] if self._events else now
        reset = max(0.0, oldest + self.window_s - now)
        return Verdict(
            admitted=admitted,
            retry_after_s=wait,
            remaining_requests=None if self.rpm is None else max(0, self.rpm - len(self._events)),
            remaining_tokens=None if self.tpm is None else max(0, self.tpm - self._tokens),
            reset_requests_s=reset,
            reset_tokens_s=reset,
        )

    def headers(self, verdict: Verdict) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.rpm is not None:
            headers["x-ratelimit-limit-requests"] = str(self.rpm)
            headers["x-ratelimit-remaining-requests"] = str(verdict.remaining_requests)
            headers["x-ratelimit-reset-requests"] = format_duration(verdict.reset_requests_s)
        if self.tpm is not None:
            headers["x-ratelimit-limit-tokens"] = str(self.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(verdict.remaining_tokens)
            headers["x-ratelimit-reset-tokens"] = format_duration(verdict.reset_tokens_s)
        if not verdict.admitted:
            headers["retry-after"] = str(max(1, math.ceil(verdict.retry_after_s)))
            headers["retry-after-ms"] = str(max(1, math.ceil(verdict.retry_after_s * 1000)))
        return headers


def format_duration(seconds: float) -> str:
    """OpenAI's style: '120ms' below a second, else '1.5s'."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
