"""Uploaded files as clients see them (``FileInfo``, OpenAI's File object), and the client's
file operations over ``dispatcher.store.files``.

``owner`` is an API key id. On writes, None stores the file as made by direct access (or the
admin key); on reads, None sees every owner's files and a key id only that key's: another
owner's file is "not found", exactly like a missing one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO, Any, Iterable, Iterator, Union

from sqlalchemy.engine import Row

from dispatcher.errors import NotFoundError, UsageError
from dispatcher.store import files as file_sql
from dispatcher.store.database import Database
from dispatcher.store.tables import files as files_table

# Bytes to store: a binary file object, an iterable of byte chunks, or the bytes themselves.
ByteSource = Union[IO[bytes], Iterable[bytes], bytes, bytearray, memoryview]

MAX_FILENAME = files_table.c.filename.type.length
MAX_PURPOSE = files_table.c.purpose.type.length
READ_BUFFER = 64 * 1024


@dataclass(frozen=True)
class FileInfo:
    id: str
    owner: str | None
    filename: str
    purpose: str
    bytes: int
    created_at: float
    expires_at: float | None
    status: str

    @classmethod
    def from_row(cls, row: Row) -> "FileInfo":
        return cls(
            id=row.id, owner=row.owner, filename=row.filename, purpose=row.purpose, bytes=row.bytes,
            created_at=row.created_at, expires_at=row.expires_at, status=row.status,
        )

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's File object (times in whole Unix seconds)."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": int(self.created_at),
            "expires_at": None if self.expires_at is None else int(self.expires_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "status_details": None,
        }


class FileMethods:
    """``Client``'s file methods (a mixin: the client provides ``database``).

    ``owner`` is an API key id. Uploads with None belong to direct access (and the admin
    key); reads with None see every file, with a key id only that key's.
    """

    database: Database

    def upload_file(
        self,
        stream: ByteSource,
        *,
        filename: str,
        purpose: str,
        owner: str | None = None,
        expires_after_s: float | None = None,
    ) -> FileInfo:
        """Store a file from a binary stream, byte chunks or bytes, in parts of 1 MiB (never
        whole in memory). Nothing is left behind when the stream fails half-way.
        ``filename`` is metadata only; ``expires_after_s`` counts from its creation."""
        _check_metadata(filename, purpose, expires_after_s)
        # Expired files and dropped uploads go when the next file arrives, so storage does
        # not depend on some other process's housekeeping.
        self.delete_expired_files()
        row = file_sql.store_file(
            self.database, _chunks(stream), owner=owner, filename=filename, purpose=purpose,
            expires_after_s=expires_after_s,
        )
        return FileInfo.from_row(row)

    def file(self, file_id: str, *, owner: str | None = None) -> FileInfo:
        """A file's metadata; NotFoundError for a missing, expired or another owner's file."""
        with self.database.read() as connection:
            row = file_sql.get_file(connection, file_id, owner=owner)
        if row is None:
            raise NotFoundError(f"no file with id {file_id}")
        return FileInfo.from_row(row)

    def files(
        self,
        *,
        owner: str | None = None,
        purpose: str | None = None,
        after: str | None = None,
        limit: int = 20,
        order: str = "desc",
    ) -> list[FileInfo]:
        """Files by creation time (``order`` "desc" or "asc") after the file ``after``; ask
        for ``limit + 1`` to learn whether there is a next page."""
        if order not in ("asc", "desc"):
            raise UsageError(f"order must be 'asc' or 'desc', not {order!r}")
        if limit < 1:
            raise UsageError("limit must be at least 1")
        with self.database.read() as connection:
            rows = file_sql.list_files(connection, owner=owner, purpose=purpose, after=after, limit=limit,
                                       order=order)
        return [FileInfo.from_row(row) for row in rows]

    def file_bytes(self, file_id: str, *, owner: str | None = None) -> Iterator[bytes]:
        """A file's content, a part at a time. The file is looked up now: NotFoundError is
        raised by this call, not by the first ``next``."""
        self.file(file_id, owner=owner)
        return file_sql.iter_file_bytes(self.database, file_id)

    def open_file(self, file_id: str, *, owner: str | None = None) -> io.BufferedReader:
        """A file's content as a binary stream (lines, ``peek``) named after the file, e.g.
        to ``submit`` it as a batch; one part in memory at a time."""
        info = self.file(file_id, owner=owner)
        raw = _PartsReader(file_sql.iter_file_bytes(self.database, file_id), info.filename)
        return io.BufferedReader(raw, buffer_size=READ_BUFFER)

    def delete_file(self, file_id: str, *, owner: str | None = None) -> FileInfo:
        """Delete a file and its content; returns what it was."""
        with self.database.write() as connection:
            row = file_sql.get_file(connection, file_id, owner=owner)
            if row is None:
                raise NotFoundError(f"no file with id {file_id}")
            file_sql.delete_file(connection, file_id)
        return FileInfo.from_row(row)

    def delete_expired_files(self) -> list[str]:
        """Delete expired files and dropped uploads now (each upload also does); returns their ids."""
        with self.database.write() as connection:
            return file_sql.delete_expired_files(connection)


def _check_metadata(filename: str, purpose: str, expires_after_s: float | None) -> None:
    """Refuse what the columns cannot hold, before a byte is read."""
    if not isinstance(filename, str) or not filename:
        raise UsageError("a file needs a filename (it is only metadata: no path is made from it)")
    if len(filename) > MAX_FILENAME:
        raise UsageError(f"the filename is {len(filename)} characters long; at most {MAX_FILENAME} are allowed")
    if not isinstance(purpose, str) or not purpose:
        raise UsageError("a file needs a purpose (e.g. 'batch')")
    if len(purpose) > MAX_PURPOSE:
        raise UsageError(f"the purpose is {len(purpose)} characters long; at most {MAX_PURPOSE} are allowed")
    if "\x00" in filename or "\x00" in purpose:
        raise UsageError("the filename or purpose contains a NUL character, which the database cannot store")
    if expires_after_s is not None and not expires_after_s > 0:
        raise UsageError("expires_after must be a positive number of seconds")


def _chunks(stream: ByteSource) -> Iterable[bytes]:
    if isinstance(stream, (bytes, bytearray, memoryview)):
        return (stream,)
    if hasattr(stream, "read"):
        return _reads(stream)
    return (_binary(chunk) for chunk in stream if len(chunk))


def _reads(stream: IO[bytes]) -> Iterator[bytes]:
    while True:
        chunk = _binary(stream.read(file_sql.PART_SIZE))
        if not chunk:
            return
        yield chunk


def _binary(chunk: Any) -> bytes:
    if isinstance(chunk, str):
        raise UsageError("file content must be bytes: open the file in binary mode ('rb')")
    return chunk


class _PartsReader(io.RawIOBase):
    """Raw reads over an iterator of parts: one part in memory at a time."""

    def __init__(self, parts: Iterator[bytes], name: str):
        self._parts = parts
        self._pending = memoryview(b"")
        self.name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            part = next(self._parts, None)
            if part is None:
                return 0
            self._pending = memoryview(part)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        close_parts = getattr(self._parts, "close", None)
        if close_parts is not None:
            close_parts()  # end the parts generator now, not at garbage collection
        super().close()
