"""Uploaded files in SQL: a row of metadata in ``files``, the bytes in ``file_parts`` of 1 MiB.

Storing bytes in parts keeps a 200 MB upload or download from ever being whole in memory, and
keeps API replicas stateless beyond SQL. An upload writes its parts in transactions of their
own while the file is ``uploaded`` and invisible; the last step flips it to ``processed``.
While uploading, ``expires_at`` is the upload's lease, renewed by each part: an upload whose
writer died lapses and is deleted with its parts by ``delete_expired_files``, like any
expired file. Readers never see a file that is not whole or that has expired.

``owner`` arguments filter by API key id; None means every owner (direct access, the admin).
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from dispatcher.errors import NotFoundError
from dispatcher.store.database import Database
from dispatcher.store.tables import FileStatus, file_parts, files

log = logging.getLogger(__name__)

PART_SIZE = 1 << 20
# An upload that writes no part for this long is taken for dropped (a part is 1 MiB).
UPLOAD_LEASE_S = 600.0
FILE_ID_PREFIX = "file-"
# Ids per DELETE statement when expired files are removed.
DELETE_CHUNK = 500


class UploadStopped(Exception):
    """The file being uploaded was deleted meanwhile (its lease lapsed): stop writing."""


def new_file_id() -> str:
    return FILE_ID_PREFIX + secrets.token_hex(12)


def create_file(
    connection: Connection, *, file_id: str, owner: str | None, filename: str, purpose: str, now: float,
    lease_s: float = UPLOAD_LEASE_S,
) -> None:
    """The file's row, ``uploaded`` and empty, with an upload lease as its expiry."""
    connection.execute(files.insert().values(
        id=file_id, owner=owner, filename=filename, purpose=purpose, bytes=0, created_at=now,
        expires_at=now + lease_s, status=FileStatus.UPLOADED,
    ))


def add_part(connection: Connection, file_id: str, seq: int, data: bytes, now: float,
             lease_s: float = UPLOAD_LEASE_S) -> None:
    """Write one part and renew the upload's lease, in the caller's transaction; raises
    UploadStopped (roll back) if the upload is no longer ours."""
    renewed = connection.execute(
        files.update()
        .where(files.c.id == file_id, files.c.status == FileStatus.UPLOADED)
        .values(expires_at=now + lease_s)
    ).rowcount
    if not renewed:
        raise UploadStopped(file_id)
    connection.execute(file_parts.insert().values(file_id=file_id, seq=seq, data=data))


def finish_file(connection: Connection, file_id: str, size: int, expires_at: float | None) -> None:
    """Every part is written: the file becomes visible with its real size and expiry."""
    finished = connection.execute(
        files.update()
        .where(files.c.id == file_id, files.c.status == FileStatus.UPLOADED)
        .values(status=FileStatus.PROCESSED, bytes=size, expires_at=expires_at)
    ).rowcount
    if not finished:
        raise UploadStopped(file_id)


def store_file(
    database: Database, chunks: Iterable[bytes], *, owner: str | None, filename: str, purpose: str,
    expires_after_s: float | None = None,
) -> Row:
    """Write a file from byte chunks of any size, a part per transaction; returns its row.

    If anything fails on the way (the chunks' source included), what was written is deleted
    before the error propagates; if this process dies, the lapsed lease does it later.
    """
    file_id = new_file_id()
    created_at = time.time()
    with database.write() as connection:
        create_file(connection, file_id=file_id, owner=owner, filename=filename, purpose=purpose,
                    now=created_at)
    try:
        size = 0
        for seq, part in enumerate(rechunk(chunks, PART_SIZE)):
            with database.write() as connection:
                add_part(connection, file_id, seq, part, time.time())
            size += len(part)
        # OpenAI's expires_after is anchored at created_at.
        expires_at = None if expires_after_s is None else created_at + expires_after_s
        with database.write() as connection:
            finish_file(connection, file_id, size, expires_at)
            return connection.execute(sa.select(files).where(files.c.id == file_id)).one()
    except BaseException:
        _delete_quietly(database, file_id)
        raise


def _delete_quietly(database: Database, file_id: str) -> None:
    """Best effort after a failed upload; if this fails too, the lapsed lease cleans up."""
    try:
        with database.write() as connection:
            delete_file(connection, file_id)
    except Exception as exc:  # noqa: BLE001 - the upload's own error is the one to report
        log.warning("could not delete the stopped upload %s now (it goes once its lease lapses): %s",
                    file_id, exc)


def rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The same bytes in pieces of exactly ``size`` (the last one shorter); a huge chunk is
    cut without being copied whole."""
    pending = bytearray()
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        if pending:
            take = size - len(pending)
            pending += view[:take]
            view = view[take:]
            if len(pending) < size:
                continue
            yield bytes(pending)
            pending = bytearray()
        while len(view) >= size:
            yield bytes(view[:size])
            view = view[size:]
        pending += view
    if pending:
        yield bytes(pending)


def _visible(now: float, owner: str | None) -> list:
    """Whole, unexpired files (of ``owner`` unless None)."""
    conditions = [
        files.c.status == FileStatus.PROCESSED,
        sa.or_(files.c.expires_at.is_(None), files.c.expires_at > now),
    ]
    if owner is not None:
        conditions.append(files.c.owner == owner)
    return conditions


def get_file(connection: Connection, file_id: str, *, owner: str | None = None, now: float | None = None) -> Row | None:
    """A visible file's row; None when it does not exist, is not whole, has expired or belongs
    to another owner (the caller cannot tell which: existence is not leaked)."""
    now = time.time() if now is None else now
    return connection.execute(
        sa.select(files).where(files.c.id == file_id, *_visible(now, owner))
    ).first()


def list_files(
    connection: Connection, *, owner: str | None = None, purpose: str | None = None,
    after: str | None = None, limit: int = 20, order: str = "desc", now: float | None = None,
) -> list[Row]:
    """Visible files by creation time (``order`` "desc", newest first, or "asc"), after the
    file ``after`` (a cursor: the last id of the previous page). Raises NotFoundError for a
    cursor that is not a visible file of ``owner``."""
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    now = time.time() if now is None else now
    conditions = _visible(now, owner)
    if purpose is not None:
        conditions.append(files.c.purpose == purpose)
    if after is not None:
        cursor = get_file(connection, after, owner=owner, now=now)
        if cursor is None:
            raise NotFoundError(f"no file with id {after} (the 'after' cursor)")
        position = sa.tuple_(files.c.created_at, files.c.id)
        mark = sa.tuple_(sa.literal(cursor.created_at), sa.literal(cursor.id))
        conditions.append(position < mark if order == "desc" else position > mark)
    if order == "desc":
        ordering = (files.c.created_at.desc(), files.c.id.desc())
    else:
        ordering = (files.c.created_at.asc(), files.c.id.asc())
    return connection.execute(sa.select(files).where(*conditions).order_by(*ordering).limit(limit)).all()


def iter_file_bytes(database: Database, file_id: str) -> Iterator[bytes]:
    """A file's parts in order, one part per short read transaction: memory stays at one
    part however large the file, and no transaction stays open while the caller sends."""
    last = -1
    while True:
        with database.read() as connection:
            row = connection.execute(
                sa.select(file_parts.c.seq, file_parts.c.data)
                .where(file_parts.c.file_id == file_id, file_parts.c.seq > last)
                .order_by(file_parts.c.seq)
                .limit(1)
            ).first()
        if row is None:
            return
        yield bytes(row.data)
        last = row.seq


def delete_file(connection: Connection, file_id: str) -> bool:
    """Delete a file and its parts; False if there was no such file."""
    connection.execute(file_parts.delete().where(file_parts.c.file_id == file_id))
    return connection.execute(files.delete().where(files.c.id == file_id)).rowcount > 0


def delete_expired_files(connection: Connection, now: float | None = None) -> list[str]:
    """Delete files past their expiry, and uploads whose lease lapsed; returns their ids."""
    now = time.time() if now is None else now
    ids = list(connection.execute(
        sa.select(files.c.id).where(files.c.expires_at.is_not(None), files.c.expires_at <= now)
    ).scalars())
    for start in range(0, len(ids), DELETE_CHUNK):
        chunk = ids[start:start + DELETE_CHUNK]
        connection.execute(file_parts.delete().where(file_parts.c.file_id.in_(chunk)))
        connection.execute(files.delete().where(files.c.id.in_(chunk)))
    return ids
