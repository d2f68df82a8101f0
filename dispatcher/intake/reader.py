"""Streaming the lines of a submission: a path, ``-`` for stdin, a file, or dicts."""

from __future__ import annotations

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
            yield from _iter_file(sys.stdin.buffer)
            return
        path = Path(source)
        if not path.is_file():
            raise InputError(f"input file not found: {path}")
        with path.open("rb") as handle:
            yield from _iter_file(handle)
        return
    if hasattr(source, "read"):
        yield from _iter_file(source)  # type: ignore[arg-type]
        return
    for index, item in enumerate(source, start=1):  # type: ignore[arg-type]
        yield index, item


_UTF8_BOM = b"\xef\xbb\xbf"


def _iter_file(handle: IO) -> Iterator[tuple[int, bytes | str]]:
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
