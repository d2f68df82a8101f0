"""API keys: only a hash is stored, lookup by hash, revoked keys never authenticate, and
what a key's limits allow."""

from __future__ import annotations

import hashlib
import time

import pytest
import sqlalchemy as sa

from dispatcher.keys import ApiKey, authenticate, hash_secret, new_key_id, new_secret
from dispatcher.store import api_keys as key_sql
from dispatcher.store.database import Database


def add_key(database: Database, name: str, **limits) -> tuple[str, str]:
    key_id, secret = new_key_id(), new_secret()
    with database.write() as connection:
        key_sql.insert_key(connection, dict(
            id=key_id, name=name, secret_hash=hash_secret(secret), created_at=time.time(), **limits,
        ))
    return key_id, secret


def test_a_secret_authenticates_its_key_until_revoked(database):
    key_id, secret = add_key(database, "team-a", models='["chat"]', max_priority=2, max_cost=50.0)
    _, other_secret = add_key(database, "team-b")

    key = authenticate(database, secret)
    assert (key.id, key.name, key.models, key.max_priority, key.max_cost, key.revoked) == (
        key_id, "team-a", ["chat"], 2, 50.0, False)
    assert authenticate(database, other_secret).name == "team-b"
    with database.read() as connection:  # a connection works as well as the database
        assert authenticate(connection, secret).id == key_id
    for wrong in (secret[:-1], secret + "x", "", None, hash_secret(secret)):
        assert authenticate(database, wrong) is None

    with database.write() as connection:
        assert key_sql.revoke_key(connection, key_id, time.time())
        assert not key_sql.revoke_key(connection, key_id, time.time())  # once is enough
    assert authenticate(database, secret) is None
    assert authenticate(database, other_secret).name == "team-b"


def test_only_the_hash_is_stored(database):
    _, secret = add_key(database, "team-a")
    with database.read() as connection:
        row = connection.execute(sa.text("SELECT * FROM api_keys")).one()
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in [str(value) for value in row]


def test_keys_are_found_by_id_or_name_and_names_are_unique(database):
    first_id, _ = add_key(database, "team-a")
    second_id, _ = add_key(database, "team-b")
    with database.read() as connection:
        assert key_sql.find_key(connection, first_id).name == "team-a"
        assert key_sql.find_key(connection, "team-b").id == second_id
        assert key_sql.find_key(connection, "team-c") is None
        assert [row.name for row in key_sql.list_keys(connection)] == ["team-a", "team-b"]
    with pytest.raises(sa.exc.IntegrityError):
        add_key(database, "team-a")


def test_secrets_and_ids_are_fresh_and_shaped():
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(s.startswith("llmd-") and len(s) >= 5 + 43 for s in secrets)
    key_id = new_key_id()
    assert key_id.startswith("key_") and len(key_id) == 20 and int(key_id[4:], 16) >= 0


def key(**limits) -> ApiKey:
    values = dict(id="key_0", name="k", models=None, max_priority=None, max_cost=None, created_at=0.0)
    return ApiKey(**{**values, **limits})


def test_a_key_without_limits_allows_everything():
    free = key()
    assert free.allows_model("anything") and free.allows_priority(0) and free.allows_priority("urgent")
    assert free.default_priority(5) == 5
    assert free.cost_cap(None) is None and free.cost_cap(12.5) == 12.5


def test_a_keys_limits():
    limited = key(models=["chat"], max_priority=2, max_cost=50.0)
    assert limited.allows_model("chat") and not limited.allows_model("big")
    assert limited.allowed_groups(["big", "chat"]) == ["chat"]
    assert [p for p in range(10) if limited.allows_priority(p)] == list(range(2, 10))
    assert limited.allows_priority("high") and not limited.allows_priority("urgent")
    assert limited.default_priority(5) == 5
    assert key(max_priority=7).default_priority(5) == 7  # the config's default is too urgent for it
    assert limited.cost_cap(None) == 50.0 and limited.cost_cap(10.0) == 10.0 and limited.cost_cap(80.0) == 50.0


def test_a_keys_dict_has_no_secret():
    assert set(key().to_dict()) == {"id", "name", "models", "max_priority", "max_cost", "created_at", "revoked_at"}
