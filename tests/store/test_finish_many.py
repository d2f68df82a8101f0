"""Final results of many jobs in one statement on PostgreSQL (finish_many.py): the same row
as the one-by-one update SQLite keeps, for every column a result sets."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from dispatcher.store import jobs as job_sql
from dispatcher.store.finish_many import _COLUMNS
from dispatcher.store.tables import BatchStatus, JobStatus, batches, jobs

FINISH_COLUMNS = {*job_sql.RESULT_COLUMNS, "worker_id", "attempts", "groups_tried", "call_outcome"}


def test_the_array_statement_sets_the_columns_the_one_by_one_update_sets():
    assert set(_COLUMNS) - {"id"} == FINISH_COLUMNS
    bound = set(job_sql._FINISH.compile().params) - {"reserved_cost"}  # set to NULL by both
    assert bound == {f"b_{name}" for name in FINISH_COLUMNS | {"id"}}


def result_row(job_id: int, index: int) -> dict:
    succeeded = index % 2 == 0
    return {
        "b_id": job_id, "b_status": JobStatus.SUCCEEDED if succeeded else JobStatus.FAILED,
        "b_finished_at": 1_700_000_000.25 + index, "b_attempts": 1 + index, "b_groups_tried": "chat" if index else None,
        "b_response_status": 200 if succeeded else 429, "b_response": '{"id":"r%d","é":"ü"}' % index if succeeded else None,
        "b_request_id": f"req-{index}" if succeeded else None, "b_error_code": None if succeeded else "rate_limit",
        "b_error_message": None if succeeded else "slow down 'now'", "b_deployment_id": "chat-a",
        "b_prompt_tokens": 10 + index if succeeded else None, "b_completion_tokens": 5 if succeeded else None,
        "b_total_tokens": 15 + index if succeeded else None, "b_cached_tokens": 0 if succeeded else None,
        "b_cost": 0.00125 if succeeded else None, "b_latency_ms": 12 if index == 0 else 12.5,  # an int too
        "b_call_outcome": "success" if succeeded else None, "b_worker_id": "w1" if succeeded else None,
    }


@pytest.mark.parametrize("count", [1, 5])
def test_many_results_land_as_one_by_one_would(database, count):
    now = time.time()
    with database.write() as connection:
        connection.execute(batches.insert().values(id="b1", status=BatchStatus.IN_PROGRESS, created_at=now, total=count))
        job_sql.insert_jobs(connection, [
            dict(batch_id="b1", seq=i, custom_id=f"c{i}", model_group="chat", priority=5, fair_key=0.0, body="{}",
                 status=JobStatus.RUNNING, created_at=now, reserved_cost=0.5)
            for i in range(count)
        ])
        ids = [row.id for row in connection.execute(sa.select(jobs.c.id).order_by(jobs.c.seq))]
        job_sql.finish_jobs(connection, [result_row(job_id, i) for i, job_id in enumerate(ids)])
    with database.read() as connection:
        stored = {row.id: row for row in connection.execute(sa.select(jobs))}
    for index, job_id in enumerate(ids):
        row, expected = stored[job_id], result_row(job_id, index)
        for name in FINISH_COLUMNS:
            assert getattr(row, name) == expected[f"b_{name}"], name
        assert row.reserved_cost is None
