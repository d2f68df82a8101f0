"""Streaming the lines of a submission: a path, ``-`` for stdin, a file, or dicts.

Compressed input (gzip, bzip2, xz) is recognised by its first bytes, whatever the file is
called and on stdin too, and decompressed as it is read: ``prompts.jsonl.gz`` is never
unpacked to disk or memory.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Union

from dispatcher.errors import InputError

Source = Union[str, os.PathLike, IO[bytes], IO[str], Iterable[dict[str, Any]]]


def iter_lines(source: Source) -> Iterator[tuple[int, bytes | str | dict]]:
    """(line number, raw line) pairs, 1-based, skipping blank lines; never reads all at once."""
    if isinstance(source, (str, os.PathLike)):
        if str(source) == "-":
            yield from _iter_file(sys.stdin.buffer, "<stdin>")
            return
        path = Path(source)
        if not path.is_file():
            raise InputError(f"input file not found: {path}")
        with path.open("rb") as handle:
            yield from _iter_file(handle, str(path))
        return
    if hasattr(source, "read"):
        yield from _iter_file(source, describe(source) or "the input")  # type: ignore[arg-type]
        return
    for index, item in enumerate(source, start=1):  # type: ignore[arg-type]
        yield index, item


# First bytes of each compressed format we read, and how to open a stream of it.
_DECOMPRESSORS = (
    (b"\x1f\x8b", "gzip", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
    (b"BZh", "bzip2", lambda raw: bz2.BZ2File(raw, mode="rb")),
    (b"\xfd7zXZ\x00", "xz", lambda raw: lzma.LZMAFile(raw, mode="rb")),
)
# Formats recognised only to say what to do: an archive holds files, not lines.
_UNREAD_FORMATS = (
    (b"PK\x03\x04", "a zip archive; unzip it and submit the .jsonl inside"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed; decompress it first, or pipe it: "
                          "zstd -dc FILE | llm-dispatch submit -"),
)
_MAGIC_LENGTH = 6
# What a damaged or truncated compressed stream raises while it is read.
_DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError)


def _iter_file(handle: IO, name: str) -> Iterator[tuple[int, bytes | str]]:
    head = _peek(handle, _MAGIC_LENGTH)
    for magic, hint in _UNREAD_FORMATS:
        if head.startswith(magic):
            raise InputError(f"{name} is {hint}")
    for magic, format_name, opener in _DECOMPRESSORS:
        if head.startswith(magic):
            yield from _iter_compressed(opener(handle), name, format_name)
            return
    yield from _iter_text_lines(handle)


def _iter_compressed(stream: IO[bytes], name: str, format_name: str) -> Iterator[tuple[int, bytes]]:
    line_no = 0
    try:
        with stream:
            for line_no, line in _iter_text_lines(stream):
                yield line_no, line
    except _DECOMPRESSION_ERRORS as exc:
        raise InputError(
            f"{name}: the {format_name} data is damaged or cut short after line {line_no} ({exc})"
        ) from None


def _peek(handle: IO, size: int) -> bytes:
    """The first ``size`` bytes of a binary stream, left unread; b"" when that cannot be known."""
    if isinstance(handle, io.TextIOBase):
        return b""
    if hasattr(handle, "peek"):  # files and stdin (buffered readers), pipes included
        return handle.peek(size)[:size]
    seekable = getattr(handle, "seekable", None)
    if seekable is not None and seekable():
        start = handle.tell()
        head = handle.read(size)
        handle.seek(start)
        return head if isinstance(head, bytes) else b""
    return b""


_UTF8_BOM = b"\xef\xbb\xbf"


def _iter_text_lines(handle: IO) -> Iterator[tuple[int, bytes | str]]:
    for line_no, line in enumerate(handle, start=1):
        if line_no == 1:
            # Editors on Windows often save UTF-8 with a byte order mark; JSON parsers refuse it.
            line = line.removeprefix(_UTF8_BOM) if isinstance(line, bytes) else line.removeprefix("\ufeff")
        if not line.strip():
            continue
        yield line_no, line


def describe(source: Source) -> str | None:
    """A short name of the source for the batch record (a path, or None)."""
    if isinstance(source, (str, os.PathLike)):
        return "<stdin>" if str(source) == "-" else str(Path(source))
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, str) else None
