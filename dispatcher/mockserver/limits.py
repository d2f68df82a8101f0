"""Sliding-window request and token limits, enforced the way a strict provider enforces them.

A request is admitted only if, counting it, the last ``window_s`` seconds hold at most ``rpm``
requests and ``tpm`` tokens. Refused requests are not recorded, so hammering a full window does
not push the next free slot further away. The limiter also tracks the peak number of admitted
requests and tokens in any window: the window's content only grows at an admission, so
measuring right after each admission finds the true maximum.

Without rpm and tpm it admits everything but still measures those peaks (benchmarks read them
to check a client's own limiting).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

# Expired entries are dropped from the front of the lists in one slice once there are this
# many of them and they make up at least half the list: amortised O(1) per admission.
_COMPACT_AT = 4096


@dataclass(slots=True)
class Verdict:
    """The answer to one request: admitted or not, and what the x-ratelimit-* headers say."""

    admitted: bool
    retry_after_s: float = 0.0
    limited_by: str | None = None  # "requests" or "tokens" when refused
    too_large: bool = False  # the request alone costs more than tpm: it will never fit
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float = 0.0
    reset_tokens_s: float = 0.0


class SlidingWindowLimiter:
    """Exact sliding-window rpm/tpm over the last ``window_s`` seconds (either may be None).

    Admissions are kept as two parallel lists (time, running total of tokens) with a head
    index instead of a deque, so that "when will enough tokens have left the window" is a
    binary search rather than a walk over the window. ``now`` must not go backwards.
    """

    def __init__(self, rpm: int | None, tpm: int | None, window_s: float):
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        if (rpm is not None and rpm < 1) or (tpm is not None and tpm < 1):
            raise ValueError("rpm and tpm must be at least 1 when set")
        self.rpm = rpm
        self.tpm = tpm
        self.window_s = window_s
        self._times: list[float] = []
        self._totals: list[int] = []  # tokens admitted since creation, up to and including i
        self._head = 0  # index of the oldest admission still inside the window
        self._total = 0  # tokens admitted since creation
        self._expired_total = 0  # tokens admitted up to and including the last expired entry
        self.peak_requests = 0
        self.peak_tokens = 0

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    @property
    def requests_in_window(self) -> int:
        return len(self._times) - self._head

    @property
    def tokens_in_window(self) -> int:
        return self._total - self._expired_total

    def _expire(self, now: float) -> None:
        # An admission at t counts until t + window_s exclusive: at exactly t + window_s it
        # has left, which is what retry_after_s promises.
        window = self.window_s
        times = self._times
        head = self._head
        end = len(times)
        while head < end and times[head] + window <= now:
            head += 1
        if head == self._head:
            return
        self._expired_total = self._totals[head - 1]
        if head >= _COMPACT_AT and head * 2 >= end:
            del times[:head]
            del self._totals[:head]
            head = 0
        self._head = head

    def check(self, now: float, tokens: int) -> Verdict:
        """Admit (and record) or refuse a request costing ``tokens`` at monotonic time ``now``."""
        self._expire(now)
        count = self.requests_in_window
        used = self.tokens_in_window
        requests_ok = self.rpm is None or count < self.rpm
        tokens_ok = self.tpm is None or used + tokens <= self.tpm
        if requests_ok and tokens_ok:
            self._total += tokens
            self._times.append(now)
            self._totals.append(self._total)
            self.peak_requests = max(self.peak_requests, count + 1)
            self.peak_tokens = max(self.peak_tokens, used + tokens)
            return self._verdict(now, Verdict(admitted=True))
        verdict = Verdict(admitted=False, limited_by="requests" if not requests_ok else "tokens")
        wait = 0.0
        if not requests_ok:
            assert self.rpm is not None
            # The (count + 1 - rpm)-th oldest admission must leave before this one fits.
            wait = self._times[self._head + count - self.rpm] + self.window_s - now
        if not tokens_ok:
            assert self.tpm is not None
            if tokens > self.tpm:
                # It will never fit; like a provider's "request too large", tell the client
                # to stay away a whole window rather than promise a time that never comes.
                verdict.too_large = True
                wait = max(wait, self.window_s)
                verdict.limited_by = "tokens"
            else:
                wait_tokens = self._time_until_tokens_fit(now, used + tokens - self.tpm)
                if wait_tokens > wait:
                    verdict.limited_by = "tokens"
                wait = max(wait, wait_tokens)
        verdict.retry_after_s = max(0.0, wait)
        return self._verdict(now, verdict)

    def _time_until_tokens_fit(self, now: float, excess: int) -> float:
        """Seconds until at least ``excess`` of the window's tokens have left it."""
        index = bisect.bisect_left(self._totals, self._expired_total + excess, lo=self._head)
        return self._times[index] + self.window_s - now

    def _verdict(self, now: float, verdict: Verdict) -> Verdict:
        # reset-*: when the oldest admission leaves the window, i.e. when remaining-* next
        # grows. (OpenAI's buckets refill continuously; a window frees capacity in steps.)
        count = self.requests_in_window
        reset = self._times[self._head] + self.window_s - now if count else 0.0
        if self.rpm is not None:
            verdict.remaining_requests = max(0, self.rpm - count)
            verdict.reset_requests_s = reset
        if self.tpm is not None:
            verdict.remaining_tokens = max(0, self.tpm - self.tokens_in_window)
            verdict.reset_tokens_s = reset
        return verdict

    def headers(self, verdict: Verdict) -> dict[str, str]:
        """OpenAI-style x-ratelimit-* headers (for the limits that are set), and Retry-After."""
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
            # Rounded up: a client that waits exactly this long must find room.
            headers["retry-after"] = str(max(1, math.ceil(verdict.retry_after_s)))
            headers["retry-after-ms"] = str(max(1, math.ceil(verdict.retry_after_s * 1000)))
        return headers


def format_duration(seconds: float) -> str:
    """OpenAI's style: '120ms' below a second, else seconds like '1.5s' (rounded up to 1 ms)."""
    millis = max(0, math.ceil(seconds * 1000 - 1e-6))
    if millis < 1000:
        return f"{millis}ms"
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
