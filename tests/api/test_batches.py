"""/v1/batches with the openai SDK: create from an uploaded file, poll, download the output
and error files and check every answer, list with pagination, cancel, and refused input."""

from __future__ import annotations

import json

import openai
import pytest

from tests.api.conftest import batch_lines, read_lines, start_api, upload, wait_for_batch, write_api_config
from tests.conftest import cli_env, run_cli

pytestmark = pytest.mark.slow


def test_a_batch_runs_and_every_answer_is_in_its_output_file(embedded_api):
    sdk = embedded_api.sdk()
    lines = batch_lines(20, prefix="run")
    lines[3]["body"]["messages"][0]["content"] += " [[mock:status=400]]"
    lines[11]["body"]["messages"][0]["content"] += " [[mock:content_policy]]"
    source = upload(sdk, lines)
    created = sdk.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"team": "search", "run": "7"}, extra_body={"priority": "high"},
    )
    assert created.object == "batch" and created.input_file_id == source.id
    assert created.endpoint == "/v1/chat/completions" and created.completion_window == "24h"
    assert created.metadata == {"team": "search", "run": "7"}
    assert created.request_counts.total == 20
    assert created.model_extra["priority"] == 2

    batch = wait_for_batch(sdk, created.id)
    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (20, 18, 2)
    assert batch.completed_at >= batch.created_at and batch.in_progress_at is not None
    assert batch.usage.input_tokens > 0 and batch.usage.output_tokens > 0
    assert batch.usage.total_tokens == batch.usage.input_tokens + batch.usage.output_tokens

    output = read_lines(sdk, batch.output_file_id)
    expected = [line for i, line in enumerate(lines) if i not in (3, 11)]
    assert [o["custom_id"] for o in output] == [line["custom_id"] for line in expected]  # submit order
    for line, answer in zip(expected, output):
        assert answer["error"] is None and answer["response"]["status_code"] == 200
        message = answer["response"]["body"]["choices"][0]["message"]["content"]
        assert message == f"Mock reply to: {line['body']['messages'][0]['content']}"

    errors = read_lines(sdk, batch.error_file_id)
    assert [e["custom_id"] for e in errors] == ["run-3", "run-11"]
    assert [e["response"]["status_code"] for e in errors] == [400, 400]
    assert errors[1]["response"]["body"]["error"]["code"] == "content_policy_violation"

    output_file = sdk.files.retrieve(batch.output_file_id)
    assert output_file.purpose == "batch_output"
    assert output_file.bytes == len(sdk.files.content(batch.output_file_id).content)


def test_a_batch_without_failures_has_no_error_file(embedded_api):
    sdk = embedded_api.sdk()
    batch = sdk.batches.create(input_file_id=upload(sdk, batch_lines(2, prefix="clean")).id,
                               endpoint="/v1/chat/completions", completion_window="24h")
    batch = wait_for_batch(sdk, batch.id)
    assert batch.status == "completed" and batch.output_file_id and batch.error_file_id is None
    with pytest.raises(openai.NotFoundError):
        sdk.files.content(f"file-err-{batch.id}")


def test_lines_without_a_model_take_the_batch_model(embedded_api):
    sdk = embedded_api.sdk()
    source = upload(sdk, batch_lines(2, prefix="nomodel", model=None))
    batch = sdk.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions",
                               completion_window="24h", extra_body={"model": "other"})
    batch = wait_for_batch(sdk, batch.id)
    assert batch.model == "other" and batch.request_counts.completed == 2


def test_a_file_with_bad_lines_gives_a_failed_batch_naming_each_line(embedded_api):
    sdk = embedded_api.sdk()
    lines = batch_lines(5, prefix="bad")
    lines[1] = "{not json"
    lines[3]["body"]["model"] = "no-such-group"
    lines[4]["custom_id"] = "bad-0"  # a duplicate
    source = upload(sdk, lines)
    batch = sdk.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "failed" and batch.failed_at is not None
    assert batch.input_file_id == source.id
    assert [(e.line, e.code) for e in batch.errors.data] == [
        (2, "invalid_json"), (4, "unknown_model"), (5, "duplicate_custom_id")]
    assert all(e.message for e in batch.errors.data)
    assert sdk.batches.retrieve(batch.id).status == "failed"
    assert batch.output_file_id is None and batch.error_file_id is None


def test_list_pages_through_every_batch(embedded_api):
    sdk = embedded_api.sdk(embedded_api.make_key("batchlister"))
    source = upload(sdk, batch_lines(1, prefix="page"))
    made = [sdk.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions",
                               completion_window="24h").id for _ in range(5)]
    first = sdk.batches.list(limit=2)
    assert [b.id for b in first.data] == made[::-1][:2] and first.has_more is True
    assert first.model_extra["first_id"] == made[-1] and first.model_extra["last_id"] == made[-2]
    assert [b.id for b in sdk.batches.list(limit=2)] == made[::-1]  # the SDK walks every page
    rest = sdk.batches.list(after=made[1])
    assert [b.id for b in rest.data] == [made[0]] and rest.has_more is False
    with pytest.raises(openai.BadRequestError):
        sdk.batches.list(limit=101)


def test_cancel_keeps_what_finished_and_cancels_the_rest(embedded_api):
    """The server runs 4 calls at a time: 4 slow requests are in flight when the batch is
    cancelled, the other 8 are still queued."""
    sdk = embedded_api.sdk()
    lines = batch_lines(12, prefix="cancel")
    for line in lines:
        line["body"]["messages"][0]["content"] += " [[mock:sleep=1.5]]"
    batch = sdk.batches.create(input_file_id=upload(sdk, lines).id, endpoint="/v1/chat/completions",
                               completion_window="24h")
    cancelling = sdk.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at is not None
    batch = wait_for_batch(sdk, batch.id)
    assert batch.status == "cancelled" and batch.cancelled_at is not None
    finished = read_lines(sdk, batch.output_file_id) if batch.output_file_id else []
    cancelled = read_lines(sdk, batch.error_file_id)
    assert len(finished) + len(cancelled) == 12 and len(cancelled) >= 4
    assert {e["error"]["code"] for e in cancelled} == {"batch_cancelled"}
    assert sdk.batches.cancel(batch.id).status == "cancelled"  # cancelling again changes nothing


def test_cancelling_a_completed_batch_is_a_conflict(embedded_api):
    sdk = embedded_api.sdk()
    batch = sdk.batches.create(input_file_id=upload(sdk, batch_lines(1, prefix="done")).id,
                               endpoint="/v1/chat/completions", completion_window="24h")
    wait_for_batch(sdk, batch.id)
    with pytest.raises(openai.ConflictError) as refused:
        sdk.batches.cancel(batch.id)
    assert refused.value.code == "batch_not_cancellable"


def test_refused_requests(embedded_api):
    sdk = embedded_api.sdk()
    source = upload(sdk, batch_lines(1, prefix="refused"))
    create = dict(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.batches.create(**{**create, "input_file_id": "file-doesnotexist"})
    assert missing.value.param == "input_file_id"
    with pytest.raises(openai.BadRequestError) as endpoint:
        sdk.batches.create(**{**create, "endpoint": "/v1/embeddings"})
    assert endpoint.value.param == "endpoint"
    with pytest.raises(openai.BadRequestError) as priority:
        sdk.batches.create(**create, extra_body={"priority": "whenever"})
    assert priority.value.param == "priority"
    with pytest.raises(openai.BadRequestError) as unknown:
        sdk.batches.create(**create, extra_body={"colour": "blue"})
    assert unknown.value.param == "colour"
    with pytest.raises(openai.BadRequestError) as window:
        sdk.batches.create(**{**create, "completion_window": "soon"})
    assert window.value.param == "completion_window"
    with pytest.raises(openai.BadRequestError) as metadata:
        sdk.batches.create(**create, metadata={f"k{i}": "v" for i in range(17)})
    assert "16" in metadata.value.message
    with pytest.raises(openai.NotFoundError):
        sdk.batches.retrieve("batch_doesnotexist")
    with pytest.raises(openai.NotFoundError):
        sdk.batches.cancel("batch_doesnotexist")


def test_an_idempotency_key_returns_the_same_batch(embedded_api):
    sdk = embedded_api.sdk()
    source = upload(sdk, batch_lines(1, prefix="idem"))
    create = dict(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h",
                  extra_body={"idempotency_key": "nightly-2026-11-30"})
    first = sdk.batches.create(**create)
    assert sdk.batches.create(**create).id == first.id


@pytest.fixture
def priced_api(tmp_path):
    """A server whose mock group costs 0.001 USD a token: about 0.02 USD a request here."""
    priced = {"model": "mock/echo", "mock_latency_ms": 0, "input_cost_per_token": 0.001,
              "output_cost_per_token": 0.001}
    config = write_api_config(tmp_path, database_url=f"sqlite:///{tmp_path / 'priced.db'}",
                              deployments=[("chat", priced)])
    api = start_api(config)
    yield api
    api.close()


def test_a_batch_stopped_by_its_cost_cap_reads_as_cancelled_with_the_reason(priced_api):
    sdk = priced_api.sdk()
    batch = sdk.batches.create(input_file_id=upload(sdk, batch_lines(20, prefix="capped")).id,
                               endpoint="/v1/chat/completions", completion_window="24h",
                               extra_body={"max_cost": 0.05})
    batch = wait_for_batch(sdk, batch.id)
    assert batch.status == "cancelled" and batch.model_extra["dispatcher_status"] == "budget_exceeded"
    assert batch.completed_at is None and batch.cancelling_at <= batch.cancelled_at
    [stopped] = batch.errors.data
    assert (stopped.code, stopped.line, stopped.param) == ("budget_exceeded", None, None)
    spent = batch.model_extra["cost_usd"]
    assert 0.05 <= spent < 0.1
    assert stopped.message.startswith("the batch reached its max_cost (0.05 USD): ")
    assert f"{spent:.9f}".rstrip("0") + " USD spent" in stopped.message

    finished = read_lines(sdk, batch.output_file_id)
    cancelled = read_lines(sdk, batch.error_file_id)
    assert len(finished) == batch.request_counts.completed and 0 < len(finished) < 20
    assert {line["response"]["status_code"] for line in finished} == {200}
    assert len(finished) + len(cancelled) == 20
    assert {line["error"]["code"] for line in cancelled} == {"budget_exceeded"}
    assert f"{len(cancelled)} requests that had not started were cancelled" in stopped.message
    assert sdk.batches.cancel(batch.id).status == "cancelled"  # as for any cancelled batch: no 409

    printed = run_cli("-c", str(priced_api.config), "status", batch.id, "--json",
                      env=cli_env()).stdout  # the same object the API serves
    status = json.loads(printed)
    served = sdk.batches.retrieve(batch.id).model_dump()
    for field in ("status", "dispatcher_status", "errors", "cancelling_at", "cancelled_at", "completed_at"):
        assert status[field] == served[field], field
