"""Who is calling: ``Authorization: Bearer <secret>`` -> a ``Caller``, or 401.

Two kinds of secrets open the API. The admin key (``dispatcher_settings.api.admin_key``, or
LiteLLM's ``general_settings.master_key``) sees
and may do everything, like the CLI; what it creates has no owner. A key made by
``llm-dispatch keys create`` owns what it creates and sees nothing else: another owner's file
or batch answers 404, as if it did not exist. Its limits (model groups, most urgent priority,
cost ceiling) are ``ApiKey``'s to decide; ``Caller`` turns a refusal into a 403.

Secrets are compared in constant time (the admin key with ``hmac.compare_digest``, API keys by
their sha256 in SQL) and never logged. A key found is remembered for a few seconds, so a busy
client does not cost a database read per request; a revoked key stops working within that time.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from dispatcher.api.errors import ApiError
from dispatcher.keys import ApiKey, hash_secret
from dispatcher.priority import parse_priority

KEY_CACHE_TTL_S = 5.0
CHALLENGE = {"www-authenticate": "Bearer"}
KEY_CACHE_SIZE = 1024

_bearer = HTTPBearer(auto_error=False, description="The admin key or a key from `llm-dispatch keys create`")


@dataclass(frozen=True)
class Caller:
    """The authenticated caller. ``owner`` is what it creates is stamped with (None: admin)."""

    owner: str | None
    key: ApiKey | None
    admin: bool

    @property
    def list_owner(self) -> str | None:
        """The owner to filter lists by; None for the admin, who sees everything."""
        return None if self.admin else self.owner

    def check_model(self, group: str, where: str = "model") -> None:
        if self.key is not None and not self.key.allows_model(group):
            allowed = ", ".join(self.key.models or []) or "none"
            raise ApiError(
                403, f"{where}: this key may not use model group '{group}'; it may use: {allowed}",
                param="model", code="model_not_allowed",
            )

    def check_priority(self, priority: int, where: str = "priority") -> None:
        if self.key is not None and not self.key.allows_priority(priority):
            raise ApiError(
                403, f"{where}: this key may not ask for priority {priority}; its most urgent is "
                f"{self.key.max_priority} (0 is the most urgent, 9 the least)",
                param="priority", code="priority_not_allowed",
            )

    def priority(self, asked: object, configured_default: int, where: str = "priority") -> int:
        """The priority to use: the one asked for (checked), else the key's default."""
        if asked is None:
            return self.key.default_priority(configured_default) if self.key else configured_default
        try:
            level = parse_priority(asked)
        except ValueError as exc:
            raise ApiError(400, f"{where}: {exc}", param="priority", code="invalid_priority") from None
        self.check_priority(level, where)
        return level

    def cost_cap(self, asked: float | None) -> float | None:
        return self.key.cost_cap(asked) if self.key is not None else asked


class KeyCache:
    """Keys found recently, by the sha256 of their secret (the secret itself is not kept)."""

    def __init__(self, ttl_s: float = KEY_CACHE_TTL_S, size: int = KEY_CACHE_SIZE):
        self.ttl_s = ttl_s
        self.size = size
        self._keys: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> ApiKey | None:
        with self._lock:
            found = self._keys.get(digest)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, digest: str, key: ApiKey) -> None:
        with self._lock:
            if len(self._keys) >= self.size:
                self._keys.clear()  # rare; a cache miss only costs one read
            self._keys[digest] = (time.monotonic() + self.ttl_s, key)


async def authenticated(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Caller:
    """The dependency every /v1 route takes."""
    if credentials is None or not credentials.credentials:
        raise ApiError(
            401, "missing API key: send 'Authorization: Bearer <key>' (the admin key or one made by "
            "`llm-dispatch keys create`)", code="missing_api_key", headers=CHALLENGE,
        )
    secret = credentials.credentials
    state = request.app.state
    admin_key: str | None = state.admin_key
    if admin_key is not None and hmac.compare_digest(secret.encode(), admin_key.encode()):
        return Caller(owner=None, key=None, admin=True)
    digest = hash_secret(secret)
    key = state.key_cache.get(digest)
    if key is None:
        key = await run_in_threadpool(state.client.authenticate, secret)
        if key is not None:
            state.key_cache.put(digest, key)
    if key is None:
        raise ApiError(401, "invalid API key (unknown or revoked)", code="invalid_api_key", headers=CHALLENGE)
    return Caller(owner=key.id, key=key, admin=False)
