"""Exports read a batch a page of seqs at a time: every line once, in seq order, on both
databases; and on PostgreSQL the page query keeps its index whatever the statistics say."""

from __future__ import annotations

import json
import random

import pytest
import sqlalchemy as sa

from dispatcher.api.result_files import ResultFile, result_file_size, stream_result_file
from dispatcher.client import export
from dispatcher.client.export import FAILED_STATUSES, page_query, write_results
from dispatcher.store.tables import JobStatus, jobs

PAGE = 7  # small pages: 60 jobs cross many page boundaries
# seq -> status of the exported batch: pages of only queued jobs (seqs 7-20), a page of only
# failures (21-27), and every status elsewhere.
STATUSES = (
    [JobStatus.SUCCEEDED] * 7 + [JobStatus.QUEUED] * 14 + [JobStatus.FAILED] * 7
    + [JobStatus.SUCCEEDED, JobStatus.CANCELLED, JobStatus.EXPIRED, JobStatus.RUNNING, JobStatus.FAILED] * 6
    + [JobStatus.SUCCEEDED] * 2
)
COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "choices": []}


def job_row(batch_id: str, seq: int, status: str) -> dict:
    succeeded = status == JobStatus.SUCCEEDED
    return dict(
        batch_id=batch_id, seq=seq, custom_id=f"{batch_id}-{seq}", model_group="chat", priority=5,
        fair_key=0.0, body="{}", est_prompt_tokens=1, est_completion_tokens=1, status=status, claim=1,
        not_before=0.0, attempts=1, retries=0, created_at=0.0,
        response_status=200 if succeeded else None,
        response=json.dumps({**COMPLETION, "seq": seq}) if succeeded else None,
        error_code=None if succeeded or status == JobStatus.EXPIRED else "server_error",
    )


@pytest.fixture
def two_batches(database, monkeypatch):
    """Batch "b-1" as STATUSES says and a neighbour "b-0" of succeeded jobs, stored in an
    order unlike seq order (job ids do not follow seqs)."""
    monkeypatch.setattr(export, "PAGE", PAGE)
    rows = [job_row("b-1", seq, status) for seq, status in enumerate(STATUSES)]
    rows += [job_row("b-0", seq, JobStatus.SUCCEEDED) for seq in range(30)]
    random.Random(7).shuffle(rows)
    with database.write() as connection:
        connection.execute(jobs.insert(), rows)
    return database


def seqs(text: bytes) -> list[int]:
    return [int(json.loads(line)["custom_id"].rsplit("-", 1)[1]) for line in text.splitlines()]


def test_every_line_in_seq_order_across_pages(two_batches, tmp_path):
    counts = write_results(two_batches, "b-1", tmp_path / "out.jsonl", tmp_path / "err.jsonl")

    succeeded = [seq for seq, status in enumerate(STATUSES) if status == JobStatus.SUCCEEDED]
    unsuccessful = [seq for seq, status in enumerate(STATUSES) if status in FAILED_STATUSES]
    assert seqs((tmp_path / "out.jsonl").read_bytes()) == succeeded
    assert seqs((tmp_path / "err.jsonl").read_bytes()) == unsuccessful
    assert (counts.succeeded, counts.failed) == (len(succeeded), len(unsuccessful))
    bodies = [json.loads(line)["response"]["body"] for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [body["seq"] for body in bodies] == succeeded


def test_the_api_result_files_are_the_same_bytes(two_batches, tmp_path):
    write_results(two_batches, "b-1", tmp_path / "out.jsonl", tmp_path / "err.jsonl")

    for kind, name in (("output", "out.jsonl"), ("error", "err.jsonl")):
        result = ResultFile("b-1", kind)
        chunks = list(stream_result_file(two_batches, result))
        assert b"".join(chunks) == (tmp_path / name).read_bytes()
        assert all(chunks)  # pages without a line of this kind send nothing
        assert result_file_size(two_batches, result) == (tmp_path / name).stat().st_size


def test_a_batch_without_jobs_exports_nothing(database, tmp_path):
    counts = write_results(database, "no-such-batch", tmp_path / "out.jsonl", tmp_path / "err.jsonl")
    assert (counts.succeeded, counts.failed) == (0, 0)
    assert (tmp_path / "out.jsonl").read_bytes() == b""


# -- the page query's plan on PostgreSQL -----------------------------------------------------

FILL = """
INSERT INTO jobs (batch_id, seq, custom_id, model_group, priority, fair_key, body, est_prompt_tokens,
    est_completion_tokens, status, claim, not_before, attempts, retries, created_at, response)
SELECT :batch_id, i, 'r-' || i, 'chat', 5, 0.0, :body, 1, 1, 'queued', 0, 0.0, 0, 0, 0.0, NULL
FROM generate_series(0, :count - 1) AS g(i)
"""
FINISH = """
UPDATE jobs SET status = CASE WHEN seq % 50 = 49 THEN 'failed' ELSE 'succeeded' END, response = :response
WHERE batch_id = :batch_id
"""


def plan(connection, statuses: tuple[str, ...], start: int) -> str:
    query = page_query("big", statuses, start).compile(connection, compile_kwargs={"literal_binds": True})
    return "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {query}"))


def test_the_page_query_keeps_the_seq_index_with_stale_statistics(postgres_url):
    """Statistics taken while the batch was queued (then every job finished), and none at all:
    the states in which the former keyset page query went to (batch_id, status) instead."""
    engine = sa.create_engine(postgres_url)
    texts = {"body": jobs.c.body.type, "response": jobs.c.response.type}
    binds = [sa.bindparam(name, type_=kind) for name, kind in texts.items()]
    values = {"body": "{}", "response": json.dumps(COMPLETION), "count": 20_000}
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE jobs SET (autovacuum_enabled = false)")
            connection.execute(sa.text(FILL).bindparams(*binds[:1]), {**values, "batch_id": "big"})
            plans = [plan(connection, statuses, 10_003) for statuses in ((JobStatus.SUCCEEDED,), FAILED_STATUSES)]
            connection.exec_driver_sql("ANALYZE jobs")
            connection.execute(sa.text(FINISH).bindparams(*binds[1:]), {**values, "batch_id": "big"})
            plans += [plan(connection, statuses, 10_003) for statuses in ((JobStatus.SUCCEEDED,), FAILED_STATUSES)]
    finally:
        engine.dispose()
    for text in plans:
        assert "ux_jobs_batch_seq" in text, text
        assert "ix_jobs_batch_status" not in text and "Seq Scan" not in text, text
