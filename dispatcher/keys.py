"""API keys of the HTTP API: secrets, their hashes, and what a key may do.

A secret is shown once, when its key is created (``Client.create_key``); the database keeps only
its sha256. A plain (fast) hash is enough here because secrets are 256 random bits, not
passwords: there is nothing to guess from a leaked hash. Lookup is by hash, so no secret is
ever compared byte by byte; the final check uses ``hmac.compare_digest`` all the same.

What a key may do is decided by the ``ApiKey`` methods; the HTTP layer and ``Client.submit``
(for batches submitted with ``owner=key.id``) both ask them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Row

from dispatcher.errors import UsageError
from dispatcher.priority import parse_priority
from dispatcher.store import api_keys as key_sql
from dispatcher.store.database import Database

SECRET_PREFIX = "llmd-"
KEY_ID_PREFIX = "key_"


class ForbiddenForKey(UsageError):
    """The API key may not do this: a model group or a priority outside its limits (HTTP 403)."""


def new_secret() -> str:
    """A fresh secret: the prefix makes a leaked one easy to recognise (secret scanners)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return KEY_ID_PREFIX + secrets.token_hex(8)


def hash_secret(secret: str) -> str:
    """The sha256 hex digest stored in place of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A key and its limits (never its secret)."""

    id: str
    name: str
    models: list[str] | None  # model groups it may use; None: every group
    max_priority: int | None  # the most urgent priority it may ask for (2: 2..9); None: any
    max_cost: float | None  # ceiling of a batch's max_cost; None: no ceiling
    created_at: float
    revoked_at: float | None = None

    @classmethod
    def from_row(cls, row: Row) -> "ApiKey":
        return cls(
            id=row.id,
            name=row.name,
            models=json.loads(row.models) if row.models is not None else None,
            max_priority=row.max_priority,
            max_cost=row.max_cost,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def allows_model(self, group: str) -> bool:
        return self.models is None or group in self.models

    def allows_priority(self, priority: int | str) -> bool:
        """Priorities run from 0 (most urgent) to 9: a key may ask for its max_priority or less urgent."""
        return self.max_priority is None or parse_priority(priority) >= self.max_priority

    def default_priority(self, configured: int) -> int:
        """The priority of a request that names none: the config's default, unless this key
        may not be that urgent."""
        return configured if self.max_priority is None else max(configured, self.max_priority)

    def cost_cap(self, asked: float | None) -> float | None:
        """A batch's max_cost under this key: the one asked for, at most the key's ceiling."""
        if self.max_cost is None:
            return asked
        return self.max_cost if asked is None else min(asked, self.max_cost)

    def allowed_groups(self, groups: list[str]) -> list[str]:
        """The model groups of ``groups`` this key may use, in their order."""
        return [group for group in groups if self.allows_model(group)]

    def to_dict(self) -> dict[str, Any]:
        """For ``keys list --json`` and the HTTP API; there is no secret to leave out."""
        return {
            "id": self.id,
            "name": self.name,
            "models": self.models,
            "max_priority": self.max_priority,
            "max_cost": self.max_cost,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def authenticate(connection_or_database: Connection | Database, secret: str | None) -> ApiKey | None:
    """The unrevoked key whose secret this is, else None."""
    if not isinstance(secret, str) or not secret:
        return None
    digest = hash_secret(secret)
    if isinstance(connection_or_database, Database):
        with connection_or_database.read() as connection:
            row = key_sql.find_active_by_hash(connection, digest)
    else:
        row = key_sql.find_active_by_hash(connection_or_database, digest)
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        return None
    return ApiKey.from_row(row)
