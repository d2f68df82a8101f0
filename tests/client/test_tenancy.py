"""The client's tenancy: batches and files belong to an API key, another key cannot see them,
a key's limits hold for a batch and for each of its lines, usage is reported per key."""

from __future__ import annotations

import io
import time

import pytest
import sqlalchemy as sa

from dispatcher import Client
from dispatcher.errors import InputError, NotFoundError, UsageError
from dispatcher.keys import ForbiddenForKey
from tests.conftest import chat_lines


@pytest.fixture
def client(database_url, write_config):
    """An embedded client with two in-process model groups (no worker runs)."""
    config = write_config([("chat", {"model": "mock/echo"}), ("big", {"model": "mock/echo"})],
                          settings={"database_url": database_url})
    client = Client(config)
    yield client
    client.close()


def batch_count(client: Client) -> int:
    return len(client.list_batches(limit=1000))


def test_a_batch_belongs_to_its_key_and_keeps_within_the_keys_limits(client):
    key, _ = client.create_key("team-a", models=["chat"], max_priority="high", max_cost=50)
    result = client.submit(chat_lines(2, model="chat"), owner=key.id, input_file_id="file-in", max_cost=80)

    batch = client.status(result.batch_id, owner=key.id)
    assert (batch.owner, batch.input_file_id, batch.max_cost, batch.priority) == (key.id, "file-in", 50.0, 5)
    assert batch.to_openai()["input_file_id"] == "file-in"
    assert client.status(result.batch_id).owner == key.id  # direct access sees every batch
    with pytest.raises(NotFoundError):
        client.status(result.batch_id, owner="key_someoneelse")
    with pytest.raises(NotFoundError):
        client.cancel(result.batch_id, owner="key_someoneelse")
    assert client.submit(chat_lines(1, model="chat"), owner=key.id, max_cost=10).batch_id
    assert client.list_batches(limit=1)[0].max_cost == 10.0  # a lower cap is kept

    for refused in ({"model": "big"}, {"priority": "urgent"}, {"priority": 1}):
        with pytest.raises(ForbiddenForKey):
            client.submit(chat_lines(1, model="chat"), owner=key.id, **refused)
    assert batch_count(client) == 2  # nothing stored


def test_a_line_beyond_the_keys_limits_is_refused_like_any_bad_line(client):
    key, _ = client.create_key("team-a", models=["chat"], max_priority=2)
    lines = chat_lines(3, model="chat")
    lines[1]["priority"] = 0
    lines[2]["model"] = "big"
    with pytest.raises(InputError) as refused:
        client.submit(lines, owner=key.id)
    assert [(p.line, p.code) for p in refused.value.problems] == [(2, "invalid_priority"), (3, "unknown_model")]
    assert "more urgent than this API key may ask for" in refused.value.problems[0].message
    assert batch_count(client) == 0
    # The same lines are fine without a key, and a line as urgent as the key allows is fine too.
    assert client.submit(lines).total == 3
    assert client.submit([{**lines[0], "priority": 2}], owner=key.id).total == 1


def test_a_keys_default_priority_is_one_it_may_use(client):
    key, _ = client.create_key("bulk-only", max_priority="low")
    batch_id = client.submit(chat_lines(1, model="chat"), owner=key.id).batch_id
    assert client.status(batch_id).priority == 7  # not the config's 5


def test_a_revoked_or_unknown_key_cannot_submit(client):
    key, _ = client.create_key("team-a")
    client.revoke_key("team-a")
    for owner in (key.id, "key_0000000000000000"):
        with pytest.raises(ForbiddenForKey):
            client.submit(chat_lines(1, model="chat"), owner=owner)


def test_idempotency_keys_are_per_key(client):
    first, _ = client.create_key("team-a")
    second, _ = client.create_key("team-b")
    lines = chat_lines(1, model="chat")
    a = client.submit(lines, owner=first.id, idempotency_key="nightly")
    b = client.submit(lines, owner=second.id, idempotency_key="nightly")
    direct = client.submit(lines, idempotency_key="nightly")
    assert len({a.batch_id, b.batch_id, direct.batch_id}) == 3
    again = client.submit(lines, owner=first.id, idempotency_key="nightly")
    assert (again.batch_id, again.existing) == (a.batch_id, True)
    long_key = "k" * 200  # the longest a key may be still fits once scoped to its owner
    assert client.submit(lines, owner=first.id, idempotency_key=long_key).batch_id


def test_batches_list_per_key_in_pages(client):
    first, _ = client.create_key("team-a")
    second, _ = client.create_key("team-b")
    owned = {first.id: [], second.id: [], None: []}
    for owner in (first.id, second.id, first.id, None, first.id, second.id):
        owned[owner].append(client.submit(chat_lines(1, model="chat"), owner=owner).batch_id)

    def ids(**query) -> list[str]:
        return [batch.id for batch in client.list_batches(**query)]

    newest_first = owned[first.id][::-1]
    assert ids(owner=first.id) == newest_first
    assert ids(owner=first.id, limit=2) == newest_first[:2]
    assert ids(owner=first.id, limit=2, after=newest_first[1]) == newest_first[2:]
    assert ids(owner=second.id) == owned[second.id][::-1]
    assert len(ids()) == 6  # direct access and the admin see everything
    with pytest.raises(NotFoundError):
        ids(owner=first.id, after=owned[second.id][0])


def test_files_belong_to_their_key(client):
    key, _ = client.create_key("team-a")
    data = b"".join(f'{{"custom_id": "f{i}", "model": "chat", "messages": [{{"role": "user", "content": "hi {i}"}}]}}\n'.encode()
                    for i in range(3))
    info = client.upload_file(io.BytesIO(data), filename="../../etc/in.jsonl", purpose="batch", owner=key.id,
                              expires_after_s=3600)
    assert (info.bytes, info.filename, info.status, info.owner) == (len(data), "../../etc/in.jsonl", "processed", key.id)
    assert info.to_openai()["object"] == "file" and info.to_openai()["expires_at"] == int(info.expires_at)
    direct = client.upload_file([data[:10], data[10:]], filename="direct.jsonl", purpose="batch")

    assert client.file(info.id, owner=key.id) == info
    assert [f.id for f in client.files(owner=key.id)] == [info.id]
    assert {f.id for f in client.files()} == {info.id, direct.id}
    with pytest.raises(NotFoundError):
        client.file(direct.id, owner=key.id)
    with pytest.raises(NotFoundError):
        client.file_bytes(direct.id, owner=key.id)  # raised by the call, before any iteration
    with pytest.raises(NotFoundError):
        client.delete_file(direct.id, owner=key.id)
    assert b"".join(client.file_bytes(info.id, owner=key.id)) == data

    result = client.submit(client.open_file(info.id, owner=key.id), owner=key.id, input_file_id=info.id)
    batch = client.status(result.batch_id)
    assert (batch.total, batch.input_file_id, batch.input_file) == (3, info.id, "../../etc/in.jsonl")

    assert client.delete_file(info.id, owner=key.id).id == info.id
    with pytest.raises(NotFoundError):
        client.file(info.id)
    assert client.file(direct.id).id == direct.id


def test_bad_uploads_are_refused_before_anything_is_stored(client):
    with pytest.raises(UsageError, match="binary mode"):
        client.upload_file(io.StringIO("text"), filename="a.jsonl", purpose="batch")
    with pytest.raises(UsageError, match="binary mode"):
        client.upload_file(io.StringIO(""), filename="a.jsonl", purpose="batch")
    with pytest.raises(UsageError, match="at most 512"):
        client.upload_file(b"x", filename="n" * 513, purpose="batch")
    for filename, purpose in (("", "batch"), ("a", ""), ("a", "p" * 33)):
        with pytest.raises(UsageError):
            client.upload_file(b"x", filename=filename, purpose=purpose)
    assert client.files() == []


def test_keys_are_checked_when_created(client):
    client.create_key("team-a")
    for name, limits, message in (
        ("team-a", {}, "exists already"),
        ("", {}, "needs a name"),
        ("x", {"models": ["nope"]}, "unknown model group"),
        ("x", {"max_priority": "soon"}, "--max-priority"),
        ("x", {"max_cost": 0}, "--max-cost"),
    ):
        with pytest.raises(UsageError, match=message):
            client.create_key(name, **limits)
    assert [key.name for key in client.list_keys()] == ["team-a"]
    with pytest.raises(NotFoundError):
        client.revoke_key("team-z")


def test_usage_by_key(client):
    key, _ = client.create_key("team-a")
    owned = client.submit(chat_lines(1, model="chat"), owner=key.id).batch_id
    direct = client.submit(chat_lines(1, model="chat")).batch_id
    now = time.time()
    attempts = [(owned, "success", 10, 0.01), (owned, "error", None, None), (direct, "success", 5, 0.02)]
    with client.database.write() as connection:
        connection.execute(sa.text(
            "INSERT INTO attempts (job_id, batch_id, number, model_group, started_at, ended_at, outcome,"
            " total_tokens, cost) VALUES (1, :b, 1, 'chat', :s, :s, :o, :t, :c)"),
            [dict(b=b, s=now, o=o, t=t, c=c) for b, o, t, c in attempts])
    client.revoke_key(key.id)  # a revoked key's usage is still reported under its name
    rows = {row["key"]: row for row in client.usage(by="key")}
    assert set(rows) == {"team-a", "(direct)"}
    assert (rows["team-a"]["owner"], rows["team-a"]["requests"], rows["team-a"]["failures"]) == (key.id, 2, 1)
    assert rows["team-a"]["total_tokens"] == 10 and rows["team-a"]["cost"] == pytest.approx(0.01)
    assert (rows["(direct)"]["owner"], rows["(direct)"]["requests"]) == (None, 1)
