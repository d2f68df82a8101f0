"""Statements on API keys. Only a key's secret hash is stored; the secret itself never is."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from dispatcher.store.tables import api_keys


def insert_key(connection: Connection, values: dict[str, Any]) -> None:
    """Raises IntegrityError when the name (or, never in practice, the hash) is taken."""
    connection.execute(api_keys.insert().values(**values))


def list_keys(connection: Connection) -> list[Row]:
    """Every key, revoked ones included, oldest first."""
    return connection.execute(sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)).all()


def find_key(connection: Connection, id_or_name: str) -> Row | None:
    """The key with this id, else the key with this name."""
    row = connection.execute(sa.select(api_keys).where(api_keys.c.id == id_or_name)).first()
    if row is None:
        row = connection.execute(sa.select(api_keys).where(api_keys.c.name == id_or_name)).first()
    return row


def find_active_by_hash(connection: Connection, secret_hash: str) -> Row | None:
    """The unrevoked key whose secret has this hash (unique index on the hash)."""
    return connection.execute(
        sa.select(api_keys).where(api_keys.c.secret_hash == secret_hash, api_keys.c.revoked_at.is_(None))
    ).first()


def revoke_key(connection: Connection, key_id: str, now: float) -> bool:
    """Mark a key revoked (kept for the records: batches and usage name it); False if it
    already was."""
    result = connection.execute(
        api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return result.rowcount > 0
