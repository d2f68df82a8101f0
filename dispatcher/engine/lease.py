"""What a worker can prove about its hold on the jobs it claimed.

Other workers take a worker's jobs over once its heartbeat is ``dead_after`` seconds old on
the database's clock. A heartbeat sent at (monotonic) time t and written proves the jobs are
still this worker's until about t + dead_after. A worker claims, sends a call or reaps others
only within the first half of that window; the other half absorbs a slow heartbeat write and
the moment a call takes to leave. A process that was frozen (SIGSTOP, a VM paused, a long GC
pause) finds its lease stale when it wakes, and must renew it before sending anything.
"""

from __future__ import annotations

import time


class Lease:
    def __init__(self, dead_after: float):
        self.dead_after = dead_after
        self.window = dead_after / 2
        self.confirmed_at: float | None = None  # when the last written heartbeat was sent
        self.continuous_since: float | None = None  # heartbeats fresh without a gap since then
        # Bumped when this worker learns it was declared dead: every job it claimed before was
        # handed to others, so none of them may be sent.
        self.epoch = 0

    def fresh(self) -> bool:
        return self._fresh_at(time.monotonic())

    def _fresh_at(self, moment: float) -> bool:
        return self.confirmed_at is not None and moment - self.confirmed_at < self.window

    def confirm(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` (time.monotonic()) was written."""
        if not self._fresh_at(sent_at):
            self.continuous_since = sent_at
        self.confirmed_at = max(sent_at, self.confirmed_at or sent_at)

    def lost(self) -> None:
        """This worker was declared dead: the jobs it claimed so far are someone else's."""
        self.epoch += 1
        self.confirmed_at = self.continuous_since = None

    def may_reap(self) -> bool:
        """True once this worker's own heartbeats have been written without a gap for a whole
        ``dead_after``. A peer silent for that long then stopped while the database was
        reachable; right after a database outage everyone's heartbeat is old, its own too."""
        return self.fresh() and time.monotonic() - self.continuous_since >= self.dead_after
