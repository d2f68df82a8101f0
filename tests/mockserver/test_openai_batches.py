"""The mock's OpenAI Files + Batches API, driven by the official ``openai`` SDK.

Every batch line is answered as the realtime route would answer its body; the batch finishes
after ``--batch-delay-s``, with injected per-line errors, expiry and cancel.
"""

from __future__ import annotations

import io
import time
from typing import Any

import openai
import orjson
import pytest
from openai.types import Batch, FileObject

from dispatcher.mockserver.embeddings import embedding_vector
from dispatcher.tokens import estimate_prompt_tokens, estimate_text_tokens
from tests.helpers.mock_provider import MockProvider

DELAY_S = 0.3
CHAT = "/v1/chat/completions"
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def sdk(provider: MockProvider, api_key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=provider.base_url, api_key=api_key, max_retries=0)


def chat_line(index: int, **body: Any) -> dict[str, Any]:
    body = {"model": "gpt-mock", "messages": [{"role": "user", "content": f"question {index}"}], **body}
    return {"custom_id": f"req-{index}", "method": "POST", "url": CHAT, "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def submit(client: openai.OpenAI, content: bytes, endpoint: str = CHAT) -> Batch:
    uploaded = client.files.create(file=("input.jsonl", io.BytesIO(content)), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h")


def wait_until_done(client: openai.OpenAI, batch_id: str, timeout: float = 10.0) -> Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in TERMINAL or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def lines_of(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    if file_id is None:
        return {}
    content = client.files.content(file_id).content
    return {line["custom_id"]: line for line in map(orjson.loads, content.splitlines())}


@pytest.fixture(scope="module")
def shared_provider():
    with MockProvider(batch_delay_s=DELAY_S) as provider:
        yield provider


@pytest.fixture
def provider(shared_provider: MockProvider) -> MockProvider:
    shared_provider.reset()
    return shared_provider


def test_a_50_line_batch_completes_with_every_answer_and_its_usage(provider):
    lines = [chat_line(i) for i in range(50)]
    with sdk(provider) as client:
        uploaded = client.files.create(file=("input.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
        assert isinstance(uploaded, FileObject) and uploaded.purpose == "batch"
        assert uploaded.bytes == len(jsonl(lines)) and uploaded.status == "processed"
        assert client.files.retrieve(uploaded.id).id == uploaded.id
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h",
                                      metadata={"team": "search"})
        assert batch.status == "validating" and batch.metadata == {"team": "search"}
        assert batch.request_counts.total == 50 and batch.output_file_id is None
        assert batch.expires_at == batch.created_at + 24 * 3600
        seen = {batch.status}
        while batch.status not in TERMINAL:
            time.sleep(0.02)
            batch = client.batches.retrieve(batch.id)
            seen.add(batch.status)
        assert seen >= {"validating", "in_progress", "completed"}
        assert batch.status == "completed" and batch.error_file_id is None
        assert batch.request_counts.completed == 50 and batch.request_counts.failed == 0
        assert batch.in_progress_at is not None and batch.completed_at is not None
        output = lines_of(client, batch.output_file_id)

    assert sorted(output) == sorted(line["custom_id"] for line in lines)
    prompt_total = completion_total = 0
    for line in lines:
        got = output[line["custom_id"]]
        assert got["error"] is None and got["id"].startswith("batch_req_")
        response = got["response"]
        assert response["status_code"] == 200 and response["request_id"].startswith("req_mock_")
        body = response["body"]
        question = line["body"]["messages"][0]["content"]
        assert body["object"] == "chat.completion" and body["model"] == "gpt-mock"
        assert body["choices"][0]["message"]["content"] == f"Mock reply to: {question}"
        usage = body["usage"]
        assert usage["prompt_tokens"] == estimate_prompt_tokens(line["body"])
        assert usage["completion_tokens"] == estimate_text_tokens(f"Mock reply to: {question}")
        prompt_total += usage["prompt_tokens"]
        completion_total += usage["completion_tokens"]
    assert batch.usage is not None
    assert batch.usage.input_tokens == prompt_total and batch.usage.output_tokens == completion_total
    assert batch.usage.total_tokens == prompt_total + completion_total


def test_embeddings_lines_get_the_embeddings_routes_vectors(provider):
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "emb-mock", "input": f"text {i}", "dimensions": 8}} for i in range(3)]
    with sdk(provider) as client:
        batch = wait_until_done(client, submit(client, jsonl(lines), "/v1/embeddings").id)
        output = lines_of(client, batch.output_file_id)
    assert batch.status == "completed"
    vector = output["e1"]["response"]["body"]["data"][0]["embedding"]
    assert vector == pytest.approx(embedding_vector("text 1", 8).tolist())


def test_injected_line_errors_go_to_the_error_file_as_500_or_429(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_line_error_rate=0.5, seed=7)
    lines = [chat_line(i) for i in range(40)]
    with sdk(provider) as client:
        batch = wait_until_done(client, submit(client, jsonl(lines)).id)
        output = lines_of(client, batch.output_file_id)
        errors = lines_of(client, batch.error_file_id)
    assert batch.status == "completed"
    assert batch.request_counts.completed == len(output) and batch.request_counts.failed == len(errors)
    assert len(output) + len(errors) == 40 and output and errors
    assert set(output).isdisjoint(errors)
    statuses = {line["response"]["status_code"] for line in errors.values()}
    assert statuses == {500, 429}
    for line in errors.values():
        assert line["error"] is None and "error" in line["response"]["body"]


def test_a_directive_error_in_a_line_is_that_lines_error_only(provider):
    lines = [chat_line(0), chat_line(1, messages=[{"role": "user", "content": "[[mock:status=400]]"}])]
    with sdk(provider) as client:
        batch = wait_until_done(client, submit(client, jsonl(lines)).id)
        errors = lines_of(client, batch.error_file_id)
    assert batch.status == "completed" and batch.request_counts.completed == 1
    assert errors["req-1"]["response"]["status_code"] == 400


def test_an_expiring_batch_delivers_what_finished_and_expires_the_rest(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_expire=True)
    lines = [chat_line(i) for i in range(10)]
    with sdk(provider) as client:
        batch = wait_until_done(client, submit(client, jsonl(lines)).id)
        output = lines_of(client, batch.output_file_id)
        errors = lines_of(client, batch.error_file_id)
    assert batch.status == "expired" and batch.expired_at is not None and batch.completed_at is None
    assert len(output) == 5 and len(errors) == 5
    assert batch.request_counts.completed == 5 and batch.request_counts.failed == 5
    for line in errors.values():
        assert line["response"] is None and line["error"]["code"] == "batch_expired"


def test_cancel_goes_cancelling_then_cancelled_keeping_what_finished(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=1.0)
    lines = [chat_line(i) for i in range(100)]
    with sdk(provider) as client:
        created = submit(client, jsonl(lines))
        time.sleep(0.5)
        cancelling = client.batches.cancel(created.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
        done = cancelling.request_counts.completed
        assert 0 < done < 100
        batch = wait_until_done(client, created.id)
        output = lines_of(client, batch.output_file_id)
        with pytest.raises(openai.BadRequestError):
            client.batches.cancel(created.id)
    assert batch.status == "cancelled" and batch.cancelled_at is not None
    assert batch.request_counts.completed == done == len(output)
    assert sorted(output) == sorted(f"req-{i}" for i in range(done))
    assert provider.stats()["batches"]["openai"]["cancels"] == 1


def test_a_file_over_the_line_limit_fails_the_batch_naming_the_line(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_max_lines=5)
    with sdk(provider) as client:
        batch = wait_until_done(client, submit(client, jsonl([chat_line(i) for i in range(6)])).id)
        assert wait_until_done(client, submit(client, jsonl([chat_line(i) for i in range(5)])).id).status == "completed"
    assert batch.status == "failed" and batch.failed_at is not None and batch.output_file_id is None
    assert batch.errors is not None and batch.errors.data is not None
    [error] = batch.errors.data
    assert error.code == "too_many_requests" and error.line == 6


def test_the_default_limit_is_openais_50000_lines(provider):
    lines = [chat_line(i) for i in range(50_001)]
    with sdk(provider) as client:
        batch = wait_until_done(client, submit(client, jsonl(lines)).id)
    assert batch.status == "failed" and batch.errors.data[0].line == 50_001


def test_invalid_lines_fail_the_batch_with_each_line_named(provider):
    lines = [chat_line(0), chat_line(0), {**chat_line(2), "url": "/v1/embeddings"}, {**chat_line(3), "method": "GET"}]
    content = jsonl(lines) + b"not json\n"
    with sdk(provider) as client:
        batch = wait_until_done(client, submit(client, content).id)
    assert batch.status == "failed"
    named = [(error.line, error.code) for error in batch.errors.data]
    assert named == [(2, "duplicate_custom_id"), (3, "mismatched_endpoint"), (4, "invalid_method"),
                     (5, "invalid_json_line")]


def test_list_pages_newest_first_and_files_delete(provider):
    with sdk(provider) as client:
        made = [submit(client, jsonl([chat_line(i)])).id for i in range(3)]
        page = client.batches.list(limit=2)
        assert [batch.id for batch in page.data] == made[::-1][:2] and page.has_more
        listed = [batch.id for batch in client.batches.list(limit=2)]  # iterating walks every page
        assert listed[:3] == made[::-1]
        uploaded = client.files.create(file=("x.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
        assert client.files.delete(uploaded.id).deleted
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(uploaded.id)
        with pytest.raises(openai.NotFoundError):
            client.batches.retrieve("batch_nope")


def test_stats_count_uploads_creations_and_lines_per_batch(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=DELAY_S)
    with sdk(provider) as client:
        first = submit(client, jsonl([chat_line(i) for i in range(4)]))
        second = submit(client, jsonl([chat_line(i) for i in range(2, 5)]))
    counts = provider.stats()["batches"]["openai"]
    assert counts["files_uploaded"] == 2 and counts["batches_created"] == 2 and counts["lines"] == 7
    assert counts["by_batch"] == {first.id: 4, second.id: 3}
    assert counts["duplicate_lines"] == 2  # question 2 and 3 were in the first batch
    assert provider.stats()["requests"] == 0  # batch traffic is not realtime traffic


def test_the_key_is_checked_as_on_chat(start_mock_provider):
    provider = start_mock_provider(api_key="sk-right", batch_delay_s=DELAY_S)
    with sdk(provider, api_key="sk-wrong") as client, pytest.raises(openai.AuthenticationError):
        client.files.create(file=("input.jsonl", io.BytesIO(jsonl([chat_line(0)]))), purpose="batch")
    with sdk(provider, api_key="sk-wrong") as client, pytest.raises(openai.AuthenticationError):
        client.batches.list()
    with sdk(provider, api_key="sk-right") as client:
        assert wait_until_done(client, submit(client, jsonl([chat_line(0)])).id).status == "completed"


def test_a_file_over_the_byte_limit_fails_the_batch(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_max_bytes=1000)
    with sdk(provider) as client:
        batch = wait_until_done(client, submit(client, jsonl([chat_line(i) for i in range(20)])).id)
    assert batch.status == "failed" and batch.errors.data[0].code == "file_too_large"
