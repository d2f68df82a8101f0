"""Uploaded files in SQL: parts of 1 MiB read back in order, nothing left by a failed or
dropped upload, pages by creation time per owner, expiry."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from dispatcher.errors import NotFoundError
from dispatcher.store import files as file_sql
from dispatcher.store.database import Database
from dispatcher.store.tables import FileStatus, file_parts, files

MIB = file_sql.PART_SIZE


def content(size: int) -> bytes:
    """Bytes whose every position differs from its neighbours' (a misplaced part shows)."""
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


def count(database: Database, table: sa.Table) -> int:
    with database.read() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def add_file(database: Database, file_id: str, *, owner: str | None, created_at: float,
             purpose: str = "batch", expires_at: float | None = None, data: bytes = b"x") -> None:
    """A whole file written as an upload would, at a chosen creation time."""
    with database.write() as connection:
        file_sql.create_file(connection, file_id=file_id, owner=owner, filename=f"{file_id}.jsonl",
                             purpose=purpose, now=created_at)
        file_sql.add_part(connection, file_id, 0, data, time.time())
        file_sql.finish_file(connection, file_id, len(data), expires_at)


def test_a_file_is_stored_in_parts_of_one_mebibyte_and_read_back_in_order(database):
    data = content(2 * MIB + MIB // 2)
    chunks = [data[i:i + 300_001] for i in range(0, len(data), 300_001)]  # sizes that do not divide a part

    row = file_sql.store_file(database, iter(chunks), owner="key_a", filename="in.jsonl", purpose="batch")

    assert (row.status, row.bytes, row.owner, row.filename, row.expires_at) == (
        FileStatus.PROCESSED, len(data), "key_a", "in.jsonl", None)
    with database.read() as connection:
        sizes = connection.execute(
            sa.select(sa.func.length(file_parts.c.data)).where(file_parts.c.file_id == row.id)
            .order_by(file_parts.c.seq)
        ).scalars().all()
    assert sizes == [MIB, MIB, MIB // 2]
    parts = list(file_sql.iter_file_bytes(database, row.id))
    assert [len(part) for part in parts] == sizes  # one part per read: memory stays at a part
    assert b"".join(parts) == data


def test_expiry_counts_from_creation(database):
    before = time.time()
    row = file_sql.store_file(database, [b'{"a": 1}\n'], owner=None, filename="f", purpose="batch",
                              expires_after_s=3600)
    assert before + 3600 <= row.expires_at <= row.created_at + 3600 + 1e-6


def test_an_upload_that_fails_half_way_leaves_nothing(database):
    def dropped_connection():
        yield content(MIB + 10)
        yield content(MIB // 2)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        file_sql.store_file(database, dropped_connection(), owner=None, filename="f", purpose="batch")
    assert (count(database, files), count(database, file_parts)) == (0, 0)


def test_an_upload_whose_writer_died_is_invisible_then_deleted_with_its_parts(database):
    long_ago = time.time() - 2 * file_sql.UPLOAD_LEASE_S
    with database.write() as connection:
        file_sql.create_file(connection, file_id="file-dropped", owner=None, filename="f", purpose="batch",
                             now=long_ago)
        file_sql.add_part(connection, "file-dropped", 0, b"half", long_ago)  # its last sign of life
    add_file(database, "file-live", owner=None, created_at=time.time())
    with database.read() as connection:
        assert file_sql.get_file(connection, "file-dropped") is None  # never whole: never seen
        assert [r.id for r in file_sql.list_files(connection)] == ["file-live"]

    with database.write() as connection:
        assert file_sql.delete_expired_files(connection) == ["file-dropped"]
    assert (count(database, files), count(database, file_parts)) == (1, 1)


def test_a_part_for_an_upload_no_longer_ours_is_refused(database):
    with database.write() as connection:
        file_sql.create_file(connection, file_id="file-gone", owner=None, filename="f", purpose="batch",
                             now=time.time())
    with database.write() as connection:
        file_sql.delete_file(connection, "file-gone")
    with pytest.raises(file_sql.UploadStopped), database.write() as connection:
        file_sql.add_part(connection, "file-gone", 0, b"late", time.time())
    assert count(database, file_parts) == 0


def test_expired_files_are_hidden_and_deleted(database):
    now = time.time()
    add_file(database, "file-old", owner=None, created_at=now - 100, expires_at=now - 1)
    add_file(database, "file-new", owner=None, created_at=now - 50, expires_at=now + 3600)
    with database.read() as connection:
        assert file_sql.get_file(connection, "file-old") is None
        assert file_sql.get_file(connection, "file-new") is not None
    with database.write() as connection:
        assert file_sql.delete_expired_files(connection, now) == ["file-old"]
    assert (count(database, files), count(database, file_parts)) == (1, 1)


def test_a_file_of_another_owner_is_not_found_and_no_owner_sees_all(database):
    add_file(database, "file-a", owner="key_a", created_at=time.time())
    with database.read() as connection:
        assert file_sql.get_file(connection, "file-a", owner="key_a").id == "file-a"
        assert file_sql.get_file(connection, "file-a", owner="key_b") is None
        assert file_sql.get_file(connection, "file-a").id == "file-a"


def test_list_pages_by_creation_time_per_owner_and_purpose(database):
    base = time.time() - 1000
    for i in range(5):
        add_file(database, f"file-a{i}", owner="key_a", created_at=base + i)
    add_file(database, "file-b0", owner="key_b", created_at=base + 2.5)
    add_file(database, "file-a-out", owner="key_a", created_at=base + 10, purpose="batch_output")

    def ids(**query) -> list[str]:
        with database.read() as connection:
            return [row.id for row in file_sql.list_files(connection, **query)]

    assert ids(owner="key_a", purpose="batch") == ["file-a4", "file-a3", "file-a2", "file-a1", "file-a0"]
    assert ids(owner="key_a", purpose="batch", limit=2) == ["file-a4", "file-a3"]
    assert ids(owner="key_a", purpose="batch", after="file-a3", limit=2) == ["file-a2", "file-a1"]
    assert ids(owner="key_a", purpose="batch", after="file-a1") == ["file-a0"]
    assert ids(owner="key_a", purpose="batch", after="file-a0") == []
    assert ids(owner="key_a", purpose="batch", order="asc", after="file-a1") == ["file-a2", "file-a3", "file-a4"]
    assert ids(owner="key_a")[0] == "file-a-out"
    assert ids(purpose="batch") == ["file-a4", "file-a3", "file-b0", "file-a2", "file-a1", "file-a0"]
    with pytest.raises(NotFoundError):
        ids(owner="key_a", after="file-b0")  # another owner's file is no cursor either


def test_files_created_in_the_same_instant_page_without_loss(database):
    now = time.time()
    for i in range(4):
        add_file(database, f"file-same{i}", owner=None, created_at=now)
    with database.read() as connection:
        first = [r.id for r in file_sql.list_files(connection, limit=2)]
        rest = [r.id for r in file_sql.list_files(connection, after=first[-1])]
    assert sorted(first + rest) == [f"file-same{i}" for i in range(4)]
    assert len(set(first + rest)) == 4


@pytest.mark.parametrize("sizes", [[], [0, 0], [5], [MIB], [MIB - 1, 1, MIB + 1], [3 * MIB + 7], [1] * 10])
def test_rechunk_cuts_exact_parts(sizes):
    chunks = [content(size) for size in sizes]
    parts = list(file_sql.rechunk(chunks, MIB))
    assert b"".join(parts) == b"".join(chunks)
    assert all(len(part) == MIB for part in parts[:-1])
    assert all(0 < len(part) <= MIB for part in parts)
