"""A batch's output and error files: files to the SDK, views of the batch's results here.

No copy is stored. ``file-out-<batch id>`` holds the succeeded requests and
``file-err-<batch id>`` the others (failed, cancelled, expired), as OpenAI's batch output and
error files, in submit order; their bytes are made from the job rows when read, a page of
rows at a time (``dispatcher.client.export``), so a download of any size uses flat memory.
Such a file belongs to whoever owns the batch, and exists once the batch has a result of its
kind: a cancelled or expired batch exposes what finished, as OpenAI does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator, Literal

from dispatcher.client.batch_info import BatchInfo
from dispatcher.client.export import iter_line_pages
from dispatcher.store.database import Database
from dispatcher.store.retention import mark_downloaded

Kind = Literal["output", "error"]
PREFIXES: dict[Kind, str] = {"output": "file-out-", "error": "file-err-"}


@dataclass(frozen=True)
class ResultFile:
    batch_id: str
    kind: Kind

    @property
    def id(self) -> str:
        return PREFIXES[self.kind] + self.batch_id

    @property
    def filename(self) -> str:
        return f"{self.batch_id}_{self.kind}.jsonl"


def parse_result_file_id(file_id: str) -> ResultFile | None:
    """The batch and kind a result file id names; None for any other id."""
    for kind, prefix in PREFIXES.items():
        if file_id.startswith(prefix) and len(file_id) > len(prefix):
            return ResultFile(file_id[len(prefix):], kind)
    return None


def result_file_ids(info: BatchInfo) -> dict[str, str | None]:
    """``output_file_id`` and ``error_file_id`` of a Batch object: set once there is a result
    of that kind."""
    return {
        "output_file_id": ResultFile(info.id, "output").id if info.succeeded else None,
        "error_file_id": ResultFile(info.id, "error").id if info.unsuccessful else None,
    }


def exists(result: ResultFile, info: BatchInfo) -> bool:
    return result_file_ids(info)[f"{result.kind}_file_id"] is not None


def stream_result_file(database: Database, result: ResultFile, *, downloading: bool = False) -> Iterator[bytes]:
    """The file's bytes, a page of lines (up to ``export.PAGE`` jobs) at a time.

    ``downloading`` an ended batch's output file to the end marks its results downloaded, so
    retention may prune it later (store/retention.py)."""
    for _, chunk in iter_line_pages(database, result.batch_id, failed=result.kind == "error"):
        yield chunk
    if downloading and result.kind == "output":
        with database.write() as connection:
            mark_downloaded(connection, result.batch_id, time.time())


def result_file_size(database: Database, result: ResultFile) -> int:
    """The size in bytes the file has now (counted by making its lines: no copy exists)."""
    return sum(len(chunk) for chunk in stream_result_file(database, result))


def result_file_object(result: ResultFile, info: BatchInfo, size: int) -> dict[str, Any]:
    """The File object of a batch's output or error file."""
    return {
        "id": result.id,
        "object": "file",
        "bytes": size,
        "created_at": int(info.created_at),
        "expires_at": None,
        "filename": result.filename,
        "purpose": "batch_output",
        "status": "processed",
        "status_details": None,
    }
