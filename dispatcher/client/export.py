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
from typing import IO, Callable, Iterator, NamedTuple, Optional, Union

import orjson
import sqlalchemy as sa

from dispatcher.store.database import Database
from dispatcher.store.tables import JobStatus, jobs

PAGE = 1000  # seqs per page: one page's rows are all that is held in memory


class JobRow(NamedTuple):
    """What output_line and error_line read of a job (a tuple: its fields are cheap to read)."""

    id: int
    seq: int
    custom_id: str
    status: str
    response_status: Optional[int]
    response: Optional[str]
    request_id: Optional[str]
    error_code: Optional[str]
    error_message: Optional[str]


ROW_COLUMNS = tuple(jobs.c[name] for name in JobRow._fields)


def iter_job_pages(database: Database, batch_id: str, statuses: tuple[str, ...]) -> Iterator[list[JobRow]]:
    """A batch's jobs with these statuses, in submit order, a non-empty page at a time.

    Pages cover the seqs the batch had when the export began, each read in its own short
    transaction, so a slow reader holds no snapshot or connection between pages.
    """
    with database.read() as connection:
        last = connection.execute(
            sa.select(jobs.c.seq).where(jobs.c.batch_id == batch_id).order_by(jobs.c.seq.desc()).limit(1)
        ).scalar()
    if last is None:
        return
    for start in range(0, last + 1, PAGE):
        with database.read() as connection:
            rows = connection.execute(page_query(batch_id, statuses, start)).all()
        if rows:
            yield list(map(JobRow._make, rows))


def iter_job_rows(database: Database, batch_id: str, statuses: tuple[str, ...]) -> Iterator[JobRow]:
    """A batch's jobs with these statuses, in submit order (read a page at a time)."""
    for page in iter_job_pages(database, batch_id, statuses):
        yield from page


def page_query(batch_id: str, statuses: tuple[str, ...], start: int) -> sa.Select:
    """The jobs of seqs ``start`` to ``start + PAGE - 1`` with one of ``statuses``, in seq order.

    Its plan cannot degrade with the table's statistics: only the (batch_id, seq) index
    matches both the batch and a bounded seq range, and the status test is an expression no
    index serves. With stale statistics (a batch just stored or just finished, before
    autovacuum's ANALYZE) PostgreSQL served the former ``seq > last ... LIMIT`` page from
    (batch_id, status), reading and sorting the rest of the batch for every page: an export
    took time quadratic in its size (docs/benchmarks.md, "Exports").
    """
    return (
        sa.select(*ROW_COLUMNS)
        .where(
            jobs.c.batch_id == batch_id,
            jobs.c.seq >= start,
            jobs.c.seq < start + PAGE,
            (jobs.c.status + sa.literal_column("''")).in_(statuses),
        )
        .order_by(jobs.c.seq)
    )


def _json_fragment(text: str | None, *, parsed_before: bool = False) -> bytes:
    """Provider JSON as a one-line fragment; non-JSON text becomes a JSON string.

    ``parsed_before``: the text is a success body, stored only after it parsed as JSON, so
    it can be copied as-is unless it spans several lines.
    """
    if text is None:
        return b"null"
    if parsed_before and "\n" not in text and "\r" not in text:
        return text.encode().strip()
    try:
        return orjson.dumps(orjson.loads(text))
    except orjson.JSONDecodeError:
        return orjson.dumps(text)


# One %-format per line: the cheapest way found to join its parts (docs/benchmarks.md, "Exports").
_RESPONSE_LINE = (
    b'{"id":"batch_req_%d","custom_id":%b,"response":{"status_code":%d,"request_id":%b,"body":%b},'
    b'"error":null}\n'
)
_ERROR_LINE = b'{"id":"batch_req_%d","custom_id":%b,"response":null,"error":%b}\n'


def output_line(row: JobRow | sa.Row) -> bytes:
    """One line of the OpenAI batch output file (a succeeded request)."""
    return _RESPONSE_LINE % (
        row.id, orjson.dumps(row.custom_id), row.response_status or 200, orjson.dumps(row.request_id),
        _json_fragment(row.response, parsed_before=True),
    )


def error_line(row: JobRow | sa.Row) -> bytes:
    """One line of the OpenAI batch error file (a request that did not succeed)."""
    if row.response_status is not None and row.response is not None:
        return _RESPONSE_LINE % (
            row.id, orjson.dumps(row.custom_id), row.response_status, orjson.dumps(row.request_id),
            _json_fragment(row.response),
        )
    error = {"code": _error_code(row), "message": row.error_message or row.error_code or "failed"}
    return _ERROR_LINE % (row.id, orjson.dumps(row.custom_id), orjson.dumps(error))


def _error_code(row: JobRow | sa.Row) -> str:
    if row.status == JobStatus.EXPIRED:
        return "batch_expired"
    if row.status == JobStatus.CANCELLED:
        return row.error_code or "batch_cancelled"
    return row.error_code or "failed"


FAILED_STATUSES = (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED)


def iter_line_pages(database: Database, batch_id: str, *, failed: bool = False) -> Iterator[tuple[int, bytes]]:
    """The output file (the error file with ``failed``), a page at a time: (lines, their bytes)."""
    statuses, line = (FAILED_STATUSES, error_line) if failed else ((JobStatus.SUCCEEDED,), output_line)
    for page in iter_job_pages(database, batch_id, statuses):
        yield len(page), b"".join(map(line, page))


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
            for lines, chunk in iter_line_pages(database, batch_id):
                write(chunk)
                counts.succeeded += lines
    with line_writer(errors) as write:
        if write is not None:
            for lines, chunk in iter_line_pages(database, batch_id, failed=True):
                write(chunk)
                counts.failed += lines
    return counts
