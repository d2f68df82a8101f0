"""Results out of SQL in OpenAI's batch output and error file formats, streamed in submit order.

Succeeded jobs go to the output file. Failed, cancelled and expired ones go to the error file:
with the provider's HTTP error response when there was one, else ``"response": null`` and an
``error`` object (``batch_expired``, ``batch_cancelled``, ``timeout``...).
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from typing import IO, Callable, Iterator, Union

import orjson
import sqlalchemy as sa

from dispatcher.store.database import Database
from dispatcher.store.tables import JobStatus, jobs

PAGE = 1000

ROW_COLUMNS = (  # what output_line and error_line read
    jobs.c.id,
    jobs.c.seq,
    jobs.c.custom_id,
    jobs.c.status,
    jobs.c.response_status,
    jobs.c.response,
    jobs.c.request_id,
    jobs.c.error_code,
    jobs.c.error_message,
)


def iter_job_rows(database: Database, batch_id: str, statuses: tuple[str, ...]) -> Iterator[sa.Row]:
    """Rows of a batch's jobs with these statuses, in submit order, a page at a time."""
    last_seq = -1
    while True:
        with database.read() as connection:
            page = connection.execute(
                sa.select(*ROW_COLUMNS)
                .where(jobs.c.batch_id == batch_id, jobs.c.seq > last_seq, jobs.c.status.in_(statuses))
                .order_by(jobs.c.seq)
                .limit(PAGE)
            ).all()
        if not page:
            return
        yield from page
        last_seq = page[-1].seq


def _json_fragment(text: str | None, *, parsed_before: bool = False) -> bytes:
    """Provider JSON as a one-line fragment; non-JSON text becomes a JSON string.

    ``parsed_before``: the text is a success body, stored only after it parsed as JSON, so
    it can be copied as-is unless it spans several lines.
    """
    if text is None:
        return b"null"
    raw = text.encode()
    if parsed_before and b"\n" not in raw and b"\r" not in raw:
        return raw.strip()
    try:
        return orjson.dumps(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return orjson.dumps(text)


def output_line(row: sa.Row) -> bytes:
    """One line of the OpenAI batch output file (a succeeded request)."""
    return (
        b'{"id":' + orjson.dumps(f"batch_req_{row.id}")
        + b',"custom_id":' + orjson.dumps(row.custom_id)
        + b',"response":{"status_code":' + str(row.response_status or 200).encode()
        + b',"request_id":' + orjson.dumps(row.request_id)
        + b',"body":' + _json_fragment(row.response, parsed_before=True)
        + b'},"error":null}\n'
    )


def error_line(row: sa.Row) -> bytes:
    """One line of the OpenAI batch error file (a request that did not succeed)."""
    head = b'{"id":' + orjson.dumps(f"batch_req_{row.id}") + b',"custom_id":' + orjson.dumps(row.custom_id)
    if row.response_status is not None and row.response is not None:
        return (
            head
            + b',"response":{"status_code":' + str(row.response_status).encode()
            + b',"request_id":' + orjson.dumps(row.request_id)
            + b',"body":' + _json_fragment(row.response)
            + b'},"error":null}\n'
        )
    error = {"code": _error_code(row), "message": row.error_message or row.error_code or "failed"}
    return head + b',"response":null,"error":' + orjson.dumps(error) + b"}\n"


def _error_code(row: sa.Row) -> str:
    if row.status == JobStatus.EXPIRED:
        return "batch_expired"
    if row.status == JobStatus.CANCELLED:
        return row.error_code or "batch_cancelled"
    return row.error_code or "failed"


FAILED_STATUSES = (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED)


# Where results go: a path, or an open file (binary, or text: lines are then decoded).
Target = Union[str, "os.PathLike[str]", IO[bytes], IO[str]]


@contextlib.contextmanager
def line_writer(target: Target | None) -> Iterator[Callable[[bytes], object] | None]:
    """A function writing encoded lines to ``target``; a path is opened (and closed) here."""
    if target is None:
        yield None
    elif isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as handle:
            yield handle.write
    elif isinstance(target, io.TextIOBase):
        yield lambda line: target.write(line.decode())
    else:
        yield target.write


@dataclass
class ExportCounts:
    succeeded: int = 0
    failed: int = 0


def write_results(
    database: Database, batch_id: str, output: Target | None, errors: Target | None
) -> ExportCounts:
    """Stream results to ``output`` and failures to ``errors`` (either may be None).

    Each is a path or an open file, binary or text.
    """
    counts = ExportCounts()
    with line_writer(output) as write:
        if write is not None:
            for row in iter_job_rows(database, batch_id, (JobStatus.SUCCEEDED,)):
                write(output_line(row))
                counts.succeeded += 1
    with line_writer(errors) as write:
        if write is not None:
            for row in iter_job_rows(database, batch_id, FAILED_STATUSES):
                write(error_line(row))
                counts.failed += 1
    return counts
