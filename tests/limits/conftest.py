"""Fixtures of the limit tests: one test body runs against both backends."""

from __future__ import annotations

import pytest

from dispatcher.limits.memory_backend import MemoryLimitBackend


@pytest.fixture(params=["memory", "redis"])
def make_backend(request):
    """Factory: a limit backend, in memory (embedded) or in Redis (a fleet)."""

    def make():
        if request.param == "memory":
            return MemoryLimitBackend()
        from dispatcher.limits.redis_backend import RedisLimitBackend

        return RedisLimitBackend(request.getfixturevalue("redis_server"),
                                 request.getfixturevalue("redis_namespace"))

    return make
