"""The database's clock, read without a round trip: the one clock for times stored in SQL.

Jobs' ``not_before`` and ``expires_at``, claim and attempt times are written by some
processes and compared by others, on other machines. Compared on each process's own clock, a
worker 20 s behind would not see a peer's ``not_before=now`` requeue as due for 20 s, and one
20 s ahead would expire jobs 20 s early. So every such time is on the database server's clock:
a process learns its offset from each round trip that reads ``database_now`` (a worker's
heartbeats) and adds it to ``time.time()``, as the Redis backend does for send times.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dispatcher.store.database import database_now

# The offset is taken from the quickest of the last few round trips: the error of a reading
# is at most half its round trip, and a slow one (a loaded machine) would add noise.
READINGS_KEPT = 8


@dataclass(frozen=True, slots=True)
class ClockReading:
    """The database's time, read between two local ``time.time()`` readings."""

    database_time: float
    local_before: float
    local_after: float

    @property
    def round_trip(self) -> float:
        return self.local_after - self.local_before

    @property
    def offset(self) -> float:
        return self.database_time - (self.local_before + self.local_after) / 2


def read_database_clock(connection: Connection) -> ClockReading:
    """One reading of the database's clock (a ``SELECT``, for processes that only need one)."""
    before = time.time()
    database_time = connection.execute(sa.select(database_now(connection))).scalar_one()
    return ClockReading(float(database_time), before, time.time())


class DatabaseClock:
    """``time.time()`` corrected to the database server's clock."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._readings: collections.deque[ClockReading] = collections.deque(maxlen=READINGS_KEPT)

    def now(self) -> float:
        return time.time() + self.offset

    def learn(self, reading: ClockReading) -> None:
        self._readings.append(reading)
        self.offset = min(self._readings, key=lambda r: r.round_trip).offset
