"""The asyncio Redis client that limits, routing numbers and the response cache share.

It is Redis's edge: a command or pipeline that cannot reach Redis raises ``RedisUnavailable``
(``dispatcher.errors``), mapped here once, so code above never looks at redis-py's classes.
Other Redis errors (a script error, a read-only replica) are about the command, not the
service, and propagate unchanged.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import redis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from dispatcher.config.secrets import redact_url
from dispatcher.errors import RedisUnavailable, short_reason

# Connections one worker opens to Redis for limits, stats and the cache. Hundreds of calls may
# book or settle at once; the pool makes the surplus wait for a connection instead of failing.
MAX_CONNECTIONS = 32


def redis_failure(exc: BaseException, url: str | None = None) -> RedisUnavailable | None:
    """The error of our tree for a Redis that cannot be reached, or None for other errors."""
    if not isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return None
    where = f" at {url}" if url else ""
    return RedisUnavailable(f"cannot reach Redis{where}: {short_reason(exc)}")


@contextlib.contextmanager
def _mapped(url: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        mapped = redis_failure(exc, url)
        if mapped is None:
            raise
        raise mapped from exc


class _Pipeline(Pipeline):
    _display_url = ""

    async def execute(self, raise_on_error: bool = True):
        with _mapped(self._display_url):
            return await super().execute(raise_on_error)


class MappedRedis(aioredis.Redis):
    """``redis.asyncio.Redis`` whose commands, scripts and pipelines raise our errors."""

    _display_url = ""

    async def execute_command(self, *args, **options):
        with _mapped(self._display_url):
            return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> _Pipeline:
        pipe = _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe._display_url = self._display_url
        return pipe


def connect(url: str) -> MappedRedis:
    """A client over a bounded, blocking pool of ``MAX_CONNECTIONS`` connections."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=None)
    client = MappedRedis(connection_pool=pool)
    client._display_url = redact_url(url) or ""
    return client
