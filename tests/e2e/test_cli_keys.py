"""``llm-dispatch keys create/list/revoke`` and ``usage --by key``, run as a user would.

The secret is printed once; nothing lists it again; the database holds only its hash; a
revoked key no longer authenticates.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from dispatcher import Client
from tests.conftest import chat_lines, run_cli, write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "keys.db"


@pytest.fixture
def config(db_path, write_config):
    return write_config([("chat", {"model": "mock/echo"}), ("big", {"model": "mock/echo"})],
                        settings={"database_url": f"sqlite:///{db_path}"})


def cli(config, *args: str):
    return run_cli("-c", str(config), *args)


def database_bytes(db_path) -> bytes:
    """Every byte SQLite keeps for this database: the file, its WAL and shared memory."""
    return b"".join(path.read_bytes() for path in sorted(db_path.parent.glob(db_path.name + "*")))


def test_the_secret_is_printed_once_and_only_its_hash_is_stored(config, db_path):
    created = cli(config, "keys", "create", "--name", "team-a", "--models", "chat",
                  "--max-priority", "high", "--max-cost", "50")
    assert created.returncode == 0, created.stderr.decode()
    secret = created.stdout.decode().strip()
    assert secret.startswith("llmd-") and "\n" not in secret  # stdout is the secret alone
    assert "not shown again" in created.stderr.decode()
    assert secret not in created.stderr.decode()

    listed = cli(config, "keys", "list")
    assert listed.returncode == 0, listed.stderr.decode()
    assert "team-a" in listed.stdout.decode() and secret not in listed.stdout.decode() + listed.stderr.decode()
    as_json = cli(config, "keys", "list", "--json")
    assert secret.encode() not in as_json.stdout + as_json.stderr
    [key] = json.loads(as_json.stdout)
    assert (key["name"], key["models"], key["max_priority"], key["max_cost"], key["revoked_at"]) == (
        "team-a", ["chat"], 2, 50.0, None)
    assert "secret" not in key and "secret_hash" not in key

    stored = database_bytes(db_path)
    assert secret.encode() not in stored
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored  # we looked in the right place


def test_create_json_carries_the_secret_and_bad_options_are_refused(config):
    created = cli(config, "keys", "create", "--name", "team-b", "--json")
    assert created.returncode == 0, created.stderr.decode()
    key = json.loads(created.stdout)
    assert key["secret"].startswith("llmd-") and key["models"] is None and key["id"].startswith("key_")

    for args, message in (
        (("--name", "team-b"), "exists already"),
        (("--name", "x", "--models", "chat,nope"), "unknown model group(s) nope"),
        (("--name", "x", "--max-priority", "soonest"), "--max-priority"),
        (("--name", "x", "--max-cost", "0"), "--max-cost"),
    ):
        refused = cli(config, "keys", "create", *args)
        assert refused.returncode == 2, (args, refused.stderr.decode())
        assert message in refused.stderr.decode()
        assert refused.stdout == b""  # no secret for a key that was not made


def test_a_revoked_key_no_longer_authenticates(config):
    secret = cli(config, "keys", "create", "--name", "team-a").stdout.decode().strip()
    other = cli(config, "keys", "create", "--name", "team-b").stdout.decode().strip()
    with Client(config) as client:
        assert client.authenticate(secret).name == "team-a"

    revoked = cli(config, "keys", "revoke", "team-a")
    assert revoked.returncode == 0, revoked.stderr.decode()
    assert "revoked" in revoked.stderr.decode()
    with Client(config) as client:
        assert client.authenticate(secret) is None
        assert client.authenticate(other).name == "team-b"
    [listed] = [k for k in json.loads(cli(config, "keys", "list", "--json").stdout) if k["name"] == "team-a"]
    assert listed["revoked_at"] is not None

    unknown = cli(config, "keys", "revoke", "team-z")
    assert unknown.returncode == 2 and "no API key" in unknown.stderr.decode()


def test_usage_by_key_reports_each_owner(config, tmp_path):
    cli(config, "keys", "create", "--name", "team-a")
    ran = cli(config, "run", str(write_jsonl(tmp_path / "direct.jsonl", chat_lines(2, model="chat"))),
              "-o", str(tmp_path / "out.jsonl"))
    assert ran.returncode == 0, ran.stderr.decode()
    with Client(config) as client:
        [key] = client.list_keys()
        batch_id = client.submit(chat_lines(3, prefix="team", model="chat"), owner=key.id).batch_id
        assert client.wait(batch_id, timeout=60).succeeded == 3

    report = cli(config, "usage", "--by", "key", "--json")
    assert report.returncode == 0, report.stderr.decode()
    rows = {row["key"]: (row["owner"], row["requests"]) for row in json.loads(report.stdout)}
    assert rows == {"(direct)": (None, 2), "team-a": (key.id, 3)}
    table = cli(config, "usage", "--by", "key")
    assert table.returncode == 0, table.stderr.decode()
    assert "team-a" in table.stdout.decode() and "(direct)" in table.stdout.decode()
