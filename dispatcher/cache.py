"""The response cache: a request identical to one already answered is answered again for free.

Identical means the same model group and the same body (keys sorted). A batch caches only
requests that ask for deterministic output (``temperature: 0``) unless it was submitted with
``--cache``, which caches everything. Entries live in Redis with a TTL (fleet-wide), or in
the database's ``response_cache`` table when there is no Redis, so separate embedded runs
share them (``dispatcher.backends`` picks one).
"""

from __future__ import annotations

import hashlib
import time
from typing import Protocol

import orjson

CACHE_OFF, CACHE_DETERMINISTIC, CACHE_FORCED = 0, 1, 2


def cache_key(group: str, body_json: str) -> str | None:
    """The cache key of a stored request body, or None when it is not valid JSON."""
    try:
        canonical = orjson.dumps(orjson.loads(body_json), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        return None
    return hashlib.sha256(group.encode() + b"\0" + canonical).hexdigest()


def cacheable(cache_mode: int, body_json: str) -> bool:
    if cache_mode == CACHE_FORCED:
        return True
    if cache_mode == CACHE_DETERMINISTIC:
        return orjson.loads(body_json).get("temperature") == 0
    return False


class ResponseCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, body: bytes, ttl_s: float) -> None: ...


class DatabaseResponseCache:
    """Entries in the ``response_cache`` table, so separate runs without Redis share them."""

    def __init__(self, database, run_in_thread):
        self._database = database
        self._run = run_in_thread

    async def get(self, key: str) -> bytes | None:
        return await self._run(self._get, key)

    async def put(self, key: str, body: bytes, ttl_s: float) -> None:
        await self._run(self._put, key, body.decode("utf-8", errors="replace"), time.time() + ttl_s)

    def _get(self, key: str) -> bytes | None:
        import sqlalchemy as sa

        from dispatcher.store.tables import response_cache

        with self._database.read() as connection:
            row = connection.execute(
                sa.select(response_cache.c.body).where(
                    response_cache.c.key == key, response_cache.c.expires_at > time.time()
                )
            ).first()
        return row.body.encode() if row else None

    def _put(self, key: str, body: str, expires_at: float) -> None:
        from dispatcher.store.tables import response_cache

        with self._database.write() as connection:
            if self._database.is_sqlite:
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            statement = insert(response_cache).values(key=key, body=body, expires_at=expires_at)
            connection.execute(statement.on_conflict_do_update(
                index_elements=["key"], set_={"body": body, "expires_at": expires_at}
            ))


class RedisResponseCache:
    def __init__(self, client, namespace: str):
        self._client = client
        self._prefix = f"{namespace}:cache:"

    async def get(self, key: str) -> bytes | None:
        return await self._client.get(self._prefix + key)

    async def put(self, key: str, body: bytes, ttl_s: float) -> None:
        await self._client.set(self._prefix + key, body, px=max(1, int(ttl_s * 1000)))
