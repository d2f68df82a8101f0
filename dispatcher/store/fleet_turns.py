"""Chores one worker of the fleet does now and then (retention, VACUUM): whose turn it is,
decided in SQL on the database's clock (the ``fleet_turns`` table)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from dispatcher.store.tables import fleet_turns


def take_turn(connection: Connection, name: str, now: float, interval: float) -> bool:
    """True for the one worker that takes the fleet's turn at chore ``name`` (due at most
    every ``interval`` seconds, database clock); a conditional UPDATE decides, or the INSERT
    of the chore's first turn (skipped when another worker inserted it first)."""
    taken = connection.execute(
        fleet_turns.update()
        .where(fleet_turns.c.name == name, fleet_turns.c.next_at <= now)
        .values(next_at=now + interval)
    ).rowcount
    if taken:
        return True
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    first = insert(fleet_turns).values(name=name, next_at=now + interval).on_conflict_do_nothing()
    return connection.execute(first.returning(fleet_turns.c.name)).first() is not None
