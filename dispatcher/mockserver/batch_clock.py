"""When a mock batch's lines finish: the timeline shared by OpenAI's and Anthropic's batches.

A batch's answers are decided when it is created; time only reveals them. Over
``--batch-delay-s`` the lines finish in order at an even pace, so a batch read halfway has
about half its lines done, and a cancel keeps exactly the lines done by then. Nothing runs in
the background: every read works out where the batch is from the clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Shares of the delay: OpenAI's batch validates for the first tenth and finalizes in the last;
# a cancel takes a quarter of the delay to settle (calls in flight end).
VALIDATING_SHARE = 0.1
FINALIZING_SHARE = 0.1
CANCEL_SHARE = 0.25
DAY_S = 24 * 3600


@dataclass(slots=True)
class BatchClock:
    """One batch's timeline: created now, ends ``delay_s`` later (or expires then)."""

    delay_s: float
    lines: int
    expire: bool  # ends expired with half its lines done, instead of completed
    started: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)  # Unix time of creation
    cancelled_at: float | None = None  # monotonic time of the cancel request

    def elapsed(self, now: float) -> float:
        return now - self.started

    def unix(self, monotonic_at: float) -> int:
        """A monotonic instant of this batch as Unix seconds."""
        return int(self.wall + (monotonic_at - self.started))

    def ends_at(self) -> float:
        return self.started + self.delay_s

    def ended(self, now: float) -> bool:
        """Completed or expired, or cancelled and settled."""
        if self.cancelled_at is not None:
            return now >= self.cancel_settles_at()
        return now >= self.ends_at()

    def cancel_settles_at(self) -> float:
        assert self.cancelled_at is not None
        return self.cancelled_at + self.delay_s * CANCEL_SHARE

    def done(self, now: float, *, working_from: float = 0.0, working_until: float = 1.0) -> int:
        """Lines finished at ``now``; lines are worked on between those shares of the delay."""
        if self.cancelled_at is not None:
            now = min(now, self.cancelled_at)
        # An expiring batch works at half the pace: half its lines are done when time is up.
        target = self.lines // 2 if self.expire else self.lines
        if self.delay_s <= 0 or now >= self.ends_at():
            return target
        share = (self.elapsed(now) / self.delay_s - working_from) / (working_until - working_from)
        return int(target * min(1.0, max(0.0, share)))
