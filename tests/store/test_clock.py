"""The database's clock as a worker reads it: from its heartbeats, to within a round trip."""

from __future__ import annotations

import time

from dispatcher.store import workers as worker_sql
from dispatcher.store.clock import ClockReading, DatabaseClock, read_database_clock
from tests.store.test_claims import make_database


def test_heartbeats_read_the_database_clock_within_their_round_trip(database_url):
    database = make_database(database_url)
    with database.write() as connection:
        registered = worker_sql.register_worker(
            connection, worker_id="w", hostname="h", pid=1, concurrency=1, groups=["chat"]
        )
        beat = worker_sql.beat(connection, "w", dead_after=15).reading
        direct = read_database_clock(connection)
    # Same machine: the database's clock is ours, so each reading's offset is near zero.
    for reading in (registered, beat, direct):
        assert reading.local_before <= reading.local_after
        assert abs(reading.offset) < 0.5 + reading.round_trip
    with database.write() as connection:
        worker_sql.reap_worker(connection, "w", time.time(), "test")
        assert worker_sql.beat(connection, "w", dead_after=15).reading is None  # declared dead: no reading


def test_the_clock_keeps_the_offset_of_the_quickest_recent_round_trip():
    clock = DatabaseClock()
    clock.learn(ClockReading(database_time=1020.0, local_before=999.0, local_after=1001.0))
    assert clock.offset == 20.0
    clock.learn(ClockReading(database_time=1035.0, local_before=1010.0, local_after=1014.0))  # slower
    assert clock.offset == 20.0
    clock.learn(ClockReading(database_time=1040.3, local_before=1020.0, local_after=1020.2))  # quicker
    assert abs(clock.offset - 20.2) < 1e-9
    assert abs(clock.now() - (time.time() + 20.2)) < 0.1
