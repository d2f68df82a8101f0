"""The Batch object ``status --json`` prints and the HTTP API serves: OpenAI's statuses only,
ours beside them in ``dispatcher_status``."""

from __future__ import annotations

import dataclasses

from dispatcher.client.batch_info import BatchInfo

FIELDS = {field.name: None for field in dataclasses.fields(BatchInfo)}
CREATED, CAP_REACHED, ENDED = 1_800_000_000.0, 1_800_000_060.0, 1_800_000_065.0


def batch(**values) -> BatchInfo:
    base = dict(FIELDS, id="batch_1", status="in_progress", priority=5, created_at=CREATED,
                completion_window="24h", total=10, succeeded=0, failed=0, cancelled=0, expired=0,
                prompt_tokens=0, completion_tokens=0, total_tokens=0, cached_tokens=0, cost=0.0,
                cost_unknown=0, max_cost=0.05)
    base.update(values)
    return BatchInfo(**base)


def test_a_batch_its_cost_cap_stopped_is_cancelled_and_says_why():
    stopped = batch(status="budget_exceeded", succeeded=3, cancelled=7, cost=0.0523, budget_exceeded_at=CAP_REACHED,
                    finalizing_at=ENDED, completed_at=ENDED).to_openai()
    assert (stopped["status"], stopped["dispatcher_status"]) == ("cancelled", "budget_exceeded")
    assert (stopped["cancelling_at"], stopped["cancelled_at"]) == (int(CAP_REACHED), int(ENDED))
    assert stopped["completed_at"] is None and stopped["finalizing_at"] is None
    assert stopped["errors"] == {"object": "list", "data": [{
        "code": "budget_exceeded", "line": None, "param": None,
        "message": "the batch reached its max_cost (0.05 USD): 0.0523 USD spent; 7 requests that had not "
                   "started were cancelled",
    }]}


def test_while_its_running_calls_finish_it_is_cancelling():
    stopping = batch(succeeded=3, cancelled=5, cost=0.05, budget_exceeded_at=CAP_REACHED, owner="key_1").to_openai()
    assert (stopping["status"], stopping["dispatcher_status"]) == ("cancelling", "in_progress")
    assert stopping["cancelling_at"] == int(CAP_REACHED) and stopping["cancelled_at"] is None
    [entry] = stopping["errors"]["data"]
    assert "(0.05 USD, as asked or its API key's cost ceiling if lower)" in entry["message"]


def test_a_cap_reached_by_the_last_calls_stops_nothing_the_batch_completed():
    ran = batch(status="budget_exceeded", succeeded=10, cost=0.061, budget_exceeded_at=CAP_REACHED,
                finalizing_at=ENDED, completed_at=ENDED).to_openai()
    assert (ran["status"], ran["dispatcher_status"]) == ("completed", "budget_exceeded")
    assert ran["completed_at"] == int(ENDED) and ran["cancelled_at"] is None and ran["errors"] is None


def test_other_statuses_are_openai_s_and_refused_lines_stay_in_errors():
    refused = {"object": "list", "data": [{"code": "invalid_json", "line": 2, "message": "not JSON", "param": None}]}
    for status in ("validating", "in_progress", "finalizing", "completed", "failed", "expired", "cancelling",
                   "cancelled"):
        shown = batch(status=status, errors=refused if status == "failed" else None).to_openai()
        assert shown["status"] == shown["dispatcher_status"] == status
    assert batch(status="failed", errors=refused).to_openai()["errors"] == refused
