"""The client's API-key methods: create (the secret is returned once), list, revoke,
authenticate; and the limits a key puts on a batch submitted in its name."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import sqlalchemy as sa

from dispatcher.deployments import Deployments
from dispatcher.errors import NotFoundError, UsageError
from dispatcher.keys import ApiKey, ForbiddenForKey, authenticate, hash_secret, new_key_id, new_secret
from dispatcher.priority import parse_priority
from dispatcher.store import api_keys as key_sql
from dispatcher.store.database import Database
from dispatcher.store.tables import api_keys as keys_table
from dispatcher.submit_options import SubmitOptions

MAX_NAME = keys_table.c.name.type.length


class ApiKeyMethods:
    """``Client``'s API-key methods (a mixin: the client provides ``database`` and ``deployments``)."""

    database: Database
    deployments: Deployments

    def create_key(
        self,
        name: str,
        *,
        models: list[str] | None = None,
        max_priority: int | str | None = None,
        max_cost: float | None = None,
    ) -> tuple[ApiKey, str]:
        """A new API key and its secret. The secret is returned here only: the database
        keeps its hash, so it cannot be shown again (revoke the key and make another).

        ``models``: the model groups it may use (None: all); ``max_priority``: the most
        urgent priority it may ask for (2 or "high": 2..9); ``max_cost``: the ceiling of
        its batches' cost caps, in USD.
        """
        # Deployments are built only when needed: they may ask for provider variables.
        known_groups = self.deployments.groups if models is not None else []
        key = _new_key(name, models, max_priority, max_cost, known_groups=known_groups)
        secret = new_secret()
        try:
            with self.database.write() as connection:
                key_sql.insert_key(connection, {
                    **key.to_dict(),
                    "models": json.dumps(key.models) if key.models is not None else None,
                    "secret_hash": hash_secret(secret),
                })
        except sa.exc.IntegrityError:
            raise UsageError(f"a key named {key.name!r} exists already; choose another name "
                             "(names stay taken by revoked keys too)") from None
        return key, secret

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included (never a secret: none is stored)."""
        with self.database.read() as connection:
            return [ApiKey.from_row(row) for row in key_sql.list_keys(connection)]

    def revoke_key(self, id_or_name: str) -> ApiKey:
        """Revoke a key (by id or name): its secret stops authenticating at once; its batches
        and files stay. Revoking a revoked key changes nothing."""
        with self.database.write() as connection:
            row = key_sql.find_key(connection, id_or_name)
            if row is None:
                raise NotFoundError(f"no API key with id or name {id_or_name!r}")
            key_sql.revoke_key(connection, row.id, time.time())
            return ApiKey.from_row(key_sql.find_key(connection, row.id))

    def authenticate(self, secret: str | None) -> ApiKey | None:
        """The unrevoked key this secret belongs to, else None."""
        return authenticate(self.database, secret)


def _new_key(name: str, models: list[str] | None, max_priority: int | str | None, max_cost: float | None,
             *, known_groups: list[str]) -> ApiKey:
    """A key with checked limits (refused with a UsageError naming the option)."""
    name = (name or "").strip()
    if not name:
        raise UsageError("a key needs a name (--name), e.g. the team that will use it")
    if len(name) > MAX_NAME or "\x00" in name:
        raise UsageError(f"--name: at most {MAX_NAME} characters, without NUL")
    if models is not None:
        models = list(dict.fromkeys(models))  # once each, in the order given
        unknown = sorted(set(models) - set(known_groups))
        if unknown or not models:
            raise UsageError(
                f"--models: unknown model group(s) {', '.join(unknown) or '(none given)'}; "
                f"the config defines: {', '.join(sorted(known_groups))}"
            )
    if max_priority is not None:
        try:
            max_priority = parse_priority(max_priority)
        except ValueError as exc:
            raise UsageError(f"--max-priority: {exc}") from None
    if max_cost is not None and not max_cost > 0:
        raise UsageError("--max-cost must be a positive number of USD")
    return ApiKey(id=new_key_id(), name=name, models=models, max_priority=max_priority, max_cost=max_cost,
                  created_at=time.time())


def key_of_owner(database: Database, owner: str) -> ApiKey:
    """The key a batch is submitted for; its limits apply. A revoked or unknown key may not submit."""
    with database.read() as connection:
        row = connection.execute(sa.select(keys_table).where(keys_table.c.id == owner)).first()
    if row is None:
        raise ForbiddenForKey(f"no API key with id {owner!r}")
    key = ApiKey.from_row(row)
    if key.revoked:
        raise ForbiddenForKey(f"API key {key.name!r} is revoked")
    return key


def options_under_key(options: SubmitOptions, key: ApiKey, default_priority: int) -> SubmitOptions:
    """The batch's options within the key's limits: a model group or priority it may not use
    is refused; the cost cap is at most the key's ceiling; with no priority given, the default
    is one the key may use."""
    if options.model is not None and not key.allows_model(options.model):
        raise ForbiddenForKey(f"this key may not use model group {options.model!r}")
    if options.priority is not None and not key.allows_priority(options.priority):
        raise ForbiddenForKey(
            f"priority {options.priority} is more urgent than this key may ask for "
            f"(at most {key.max_priority}; 0 is the most urgent)"
        )
    priority = options.priority if options.priority is not None else key.default_priority(default_priority)
    return replace(options, priority=priority, max_cost=key.cost_cap(options.max_cost))
