"""VACUUM of the jobs table by the fleet (PostgreSQL).

A job's row is written three times (insert, claim, result), and neither update can be HOT
(``status`` is indexed), so each job leaves two dead row versions. Only VACUUM makes their
space reusable; until then every new version lengthens the table, and a batch ends with about
1.6 times the bytes per job (docs/benchmarks.md, storage). Autovacuum looks at a table once a
minute at most (autovacuum_naptime) and throttles itself, or is off on some servers: far too
late for a queue that turns over thousands of rows a second. So one worker of the fleet at a
time (``fleet_turns``) runs ``VACUUM jobs`` once the table's dead versions reach
``DEAD_SHARE`` of its live rows. VACUUM takes no lock that stops claims or results (an
autovacuum of jobs it meets is cancelled by the server, as for any conflicting lock).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dispatcher.store.database import Database
from dispatcher.store.fleet_turns import take_turn

TURN = "vacuum"
DEAD_SHARE = 0.01
MIN_DEAD = 2000  # below this a VACUUM frees too little to be worth its scan

_LOCK_KEY = 0x6C6C6D64_7661  # "llmd" "va": this chore's advisory lock
_TRY_LOCK = sa.text(f"SELECT pg_try_advisory_lock({_LOCK_KEY})")
_UNLOCK = sa.text(f"SELECT pg_advisory_unlock({_LOCK_KEY})")
_DEAD = sa.text(
    "SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE relid = CAST('jobs' AS regclass)"
)


def wanted(connection: Connection, enabled: bool) -> bool:
    """Whether this fleet vacuums jobs itself: on PostgreSQL, unless turned off (SQLite reuses
    the space of old row versions without it)."""
    return enabled and connection.dialect.name == "postgresql"


def due(connection: Connection) -> bool:
    """Whether jobs' dead row versions reached ``DEAD_SHARE`` of its live rows (and MIN_DEAD)."""
    row = connection.execute(_DEAD).first()
    if row is None:
        return False
    live, dead = row
    return dead >= max(MIN_DEAD, DEAD_SHARE * live)


def vacuum_if_my_turn(database: Database, settings, now: float) -> bool:
    """A worker's share of the fleet's vacuuming (``vacuum`` settings): True if it ran VACUUM."""
    with database.write() as connection:
        if not wanted(connection, settings.enabled) or not due(connection):
            return False
        if not take_turn(connection, TURN, now, settings.interval):
            return False
    # VACUUM cannot run inside a transaction block. The advisory lock keeps a second worker
    # from queueing behind a VACUUM that outlasts the interval (it ends with the session).
    with database.writer.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        if not connection.execute(_TRY_LOCK).scalar():
            return False
        try:
            connection.exec_driver_sql("VACUUM jobs")
        finally:
            connection.execute(_UNLOCK)
    return True
