"""Sliding-window request and token limits, enforced the way a strict provider enforces them.

A request is admitted only if, counting it, the last ``window_s`` seconds hold at most ``rpm``
requests and ``tpm`` tokens. Refused requests are not recorded, so hammering a full window does
not push the next free slot further away. The limiter also tracks the peak number of admitted
requests and tokens in any window: the window's content only grows at an admission, so
measuring right after each admission finds the true maximum.

Without rpm and tpm it admits everything but still measures those peaks (benchmarks read them
to check a client's own limiting).

A limiter can also hold tokens for calls in flight: Anthropic counts output tokens against
OTPM at ``max_tokens`` when a request starts and corrects them to the real count when it ends.
``RateLimits`` puts three limiters together (requests and tokens, input tokens, output tokens)
and admits a request only if all three have room.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

# Expired entries are dropped from the front of the lists in one slice once there are this
# many of them and they make up at least half the list: amortised O(1) per admission.
_COMPACT_AT = 4096
# When tokens held by calls in flight are what keeps a request out, nobody knows when those
# calls will answer; a client is told to come back after this long.
HELD_RETRY_S = 1.0


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
    replenished_s: float = 0.0  # until the window is empty again (Anthropic's "reset")


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
        self.held = 0  # tokens of calls in flight, counted against tpm until they answer
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
        verdict = self.assess(now, tokens)
        return self.admit(now, tokens) if verdict.admitted else verdict

    def assess(self, now: float, tokens: int, hold: int = 0) -> Verdict:
        """Whether a request costing ``tokens`` (and holding ``hold`` more while in flight)
        fits at ``now``; records nothing. A refusal says when it would fit."""
        self._expire(now)
        count = self.requests_in_window
        in_window = self.tokens_in_window
        used = in_window + self.held
        need = tokens + hold
        requests_ok = self.rpm is None or count < self.rpm
        tokens_ok = self.tpm is None or used + need <= self.tpm
        if requests_ok and tokens_ok:
            return Verdict(admitted=True)
        verdict = Verdict(admitted=False, limited_by="requests" if not requests_ok else "tokens")
        wait = 0.0
        if not requests_ok:
            assert self.rpm is not None
            # The (count + 1 - rpm)-th oldest admission must leave before this one fits.
            wait = self._times[self._head + count - self.rpm] + self.window_s - now
        if not tokens_ok:
            assert self.tpm is not None
            if need > self.tpm:
                # It will never fit; like a provider's "request too large", tell the client
                # to stay away a whole window rather than promise a time that never comes.
                verdict.too_large = True
                wait = max(wait, self.window_s)
                verdict.limited_by = "tokens"
            else:
                excess = used + need - self.tpm
                wait_tokens = math.inf
                if excess <= in_window:
                    wait_tokens = self._time_until_tokens_fit(now, excess)
                if self.held:
                    # Calls in flight give back what they hold when they answer, at a time
                    # nobody knows here: assume within HELD_RETRY_S.
                    rest = excess - self.held
                    after_held = self._time_until_tokens_fit(now, rest) if rest > 0 else 0.0
                    wait_tokens = min(wait_tokens, max(HELD_RETRY_S, after_held))
                if wait_tokens > wait:
                    verdict.limited_by = "tokens"
                wait = max(wait, wait_tokens)
        verdict.retry_after_s = max(0.0, wait)
        return self._verdict(now, verdict)

    def admit(self, now: float, tokens: int, hold: int = 0) -> Verdict:
        """Record a request that ``assess`` found room for at the same ``now``."""
        used = self.tokens_in_window
        self._total += tokens
        self._times.append(now)
        self._totals.append(self._total)
        self.held += hold
        self.peak_requests = max(self.peak_requests, len(self._times) - self._head)
        self.peak_tokens = max(self.peak_tokens, used + tokens)
        return self._verdict(now, Verdict(admitted=True))

    def release(self, hold: int) -> None:
        """A call in flight answered: the tokens it held are free again."""
        self.held -= hold

    def current(self, now: float) -> Verdict:
        """The limits as they stand (for the headers of a request another limit refused)."""
        self._expire(now)
        return self._verdict(now, Verdict(admitted=True))

    def _time_until_tokens_fit(self, now: float, excess: int) -> float:
        """Seconds until at least ``excess`` of the window's tokens have left it."""
        index = bisect.bisect_left(self._totals, self._expired_total + excess, lo=self._head)
        return self._times[index] + self.window_s - now

    def _verdict(self, now: float, verdict: Verdict) -> Verdict:
        # reset-*: when the oldest admission leaves the window, i.e. when remaining-* next
        # grows. (OpenAI's buckets refill continuously; a window frees capacity in steps.)
        count = self.requests_in_window
        reset = self._times[self._head] + self.window_s - now if count else 0.0
        verdict.replenished_s = self._times[-1] + self.window_s - now if count else 0.0
        if self.rpm is not None:
            verdict.remaining_requests = max(0, self.rpm - count)
            verdict.reset_requests_s = reset
        if self.tpm is not None:
            verdict.remaining_tokens = max(0, self.tpm - self.tokens_in_window - self.held)
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
            headers.update(retry_after_headers(verdict.retry_after_s))
        return headers


def retry_after_headers(seconds: float) -> dict[str, str]:
    """``retry-after`` (whole seconds) and ``retry-after-ms``, rounded up: a client that waits
    exactly this long must find room."""
    return {
        "retry-after": str(max(1, math.ceil(seconds))),
        "retry-after-ms": str(max(1, math.ceil(seconds * 1000))),
    }


@dataclass(slots=True)
class Charge:
    """What one request counts against the limits."""

    tokens: int  # against tpm: prompt plus the completion budget (OpenAI's rule)
    input: int  # against itpm
    output: int  # against otpm once answered: the output tokens of the reply
    output_budget: int  # against otpm while in flight: max_tokens (at least ``output``)


@dataclass(slots=True)
class Decision:
    """``RateLimits.check``'s answer: each limiter's verdict, and the refusal if any."""

    admitted: bool
    calls: Verdict  # rpm and tpm
    input: Verdict  # itpm
    output: Verdict  # otpm
    held: int = 0  # output tokens held until the call answers (given back by ``release``)
    retry_after_s: float = 0.0
    limited_by: str | None = None  # "requests", "tokens", "input_tokens" or "output_tokens"
    too_large: bool = False


class RateLimits:
    """rpm/tpm, itpm and otpm over one sliding window; any of them may be None (not limited).

    A request is admitted only if all three limiters have room, and is then recorded in all
    three (so each also measures its peak). Output tokens are counted at the request's budget
    while it is in flight and at the reply's real count afterwards, as Anthropic does.
    """

    def __init__(self, rpm: int | None, tpm: int | None, itpm: int | None, otpm: int | None, window_s: float):
        self.calls = SlidingWindowLimiter(rpm, tpm, window_s)
        self.input = SlidingWindowLimiter(None, itpm, window_s)
        self.output = SlidingWindowLimiter(None, otpm, window_s)
        self.window_s = window_s

    def check(self, now: float, charge: Charge) -> Decision:
        held = max(0, charge.output_budget - charge.output)
        calls = self.calls.assess(now, charge.tokens)
        inputs = self.input.assess(now, charge.input)
        outputs = self.output.assess(now, charge.output, held)
        if calls.admitted and inputs.admitted and outputs.admitted:
            return Decision(
                True,
                self.calls.admit(now, charge.tokens),
                self.input.admit(now, charge.input),
                self.output.admit(now, charge.output, held),
                held,
            )
        decision = Decision(
            False,
            calls if not calls.admitted else self.calls.current(now),
            inputs if not inputs.admitted else self.input.current(now),
            outputs if not outputs.admitted else self.output.current(now),
        )
        # The limit that keeps the request out longest is the one to name.
        for verdict, prefix in ((calls, ""), (inputs, "input_"), (outputs, "output_")):
            if not verdict.admitted and (decision.limited_by is None or verdict.retry_after_s > decision.retry_after_s):
                decision.retry_after_s = verdict.retry_after_s
                decision.limited_by = prefix + (verdict.limited_by or "tokens")
            decision.too_large = decision.too_large or verdict.too_large
        return decision

    def usage_of(self, kind: str) -> tuple[int | None, int]:
        """The limit a ``Decision.limited_by`` names, and what the window (and holds) use of it."""
        if kind == "requests":
            return self.calls.rpm, self.calls.requests_in_window
        limiter = {"tokens": self.calls, "input_tokens": self.input, "output_tokens": self.output}[kind]
        return limiter.tpm, limiter.tokens_in_window + limiter.held

    def peaks(self) -> dict[str, int]:
        """The most admitted in any window, as /mock/stats shows them."""
        return {
            "peak_requests_in_window": self.calls.peak_requests,
            "peak_tokens_in_window": self.calls.peak_tokens,
            "peak_input_tokens_in_window": self.input.peak_tokens,
            "peak_output_tokens_in_window": self.output.peak_tokens,
        }

    def release(self, decision: Decision) -> None:
        """The admitted call answered (or gave up): its held output tokens are free again."""
        if decision.held:
            self.output.release(decision.held)
            decision.held = 0


def format_duration(seconds: float) -> str:
    """OpenAI's style: '120ms' below a second, else seconds like '1.5s' (rounded up to 1 ms)."""
    millis = max(0, math.ceil(seconds * 1000 - 1e-6))
    if millis < 1000:
        return f"{millis}ms"
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
