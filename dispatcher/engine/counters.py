"""What one engine has done, for its exit log line and its tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineStats:
    claimed: int = 0
    finished: int = 0
    requeued: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    rebooked: int = 0  # calls booked again (a 429 pause, or woken too late)
    moved_forward: int = 0  # urgent calls given an earlier booked send time
