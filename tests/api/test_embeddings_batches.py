"""/v1/batches with ``endpoint: /v1/embeddings`` through the openai SDK: a batch runs and its
output is OpenAI's embeddings shape; lines calling another url are refused."""

from __future__ import annotations

import openai
import pytest

from tests.api.conftest import batch_lines, read_lines, upload, wait_for_batch

pytestmark = pytest.mark.slow


def embedding_lines(count: int, *, prefix: str = "emb", url: str = "/v1/embeddings") -> list[dict]:
    return [{"custom_id": f"{prefix}-{i}", "method": "POST", "url": url,
             "body": {"model": "chat", "input": [f"{prefix} text {i}", "another text"], "dimensions": 8}}
            for i in range(count)]


def test_an_embeddings_batch_runs_and_books_input_tokens_only(embedded_api):
    sdk = embedded_api.sdk()
    lines = embedding_lines(3)
    created = sdk.batches.create(input_file_id=upload(sdk, lines).id, endpoint="/v1/embeddings",
                                 completion_window="24h")
    assert created.request_counts.total == 3 and created.endpoint == "/v1/embeddings"

    batch = wait_for_batch(sdk, created.id)
    assert batch.status == "completed" and batch.request_counts.completed == 3
    assert batch.usage.input_tokens > 0 and batch.usage.output_tokens == 0
    assert batch.usage.total_tokens == batch.usage.input_tokens

    output = read_lines(sdk, batch.output_file_id)
    assert [o["custom_id"] for o in output] == [line["custom_id"] for line in lines]
    for answer in output:
        assert answer["error"] is None and answer["response"]["status_code"] == 200
        body = answer["response"]["body"]
        assert body["object"] == "list" and len(body["data"]) == 2
        assert all(len(item["embedding"]) == 8 for item in body["data"])
        assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    assert sum(o["response"]["body"]["usage"]["prompt_tokens"] for o in output) == batch.usage.input_tokens


def test_a_file_calling_another_url_than_the_batch_endpoint_is_refused(embedded_api):
    sdk = embedded_api.sdk()
    source = upload(sdk, batch_lines(2, prefix="chatty"))
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.batches.create(input_file_id=source.id, endpoint="/v1/embeddings", completion_window="24h")
    error = refused.value.body
    assert error["code"] == "endpoint_mismatch" and error["param"] == "endpoint"
    assert error["message"].startswith("line 1: url /v1/chat/completions calls /v1/chat/completions, "
                                       "not the batch's endpoint /v1/embeddings")


def test_an_endpoint_not_served_names_the_served_ones(embedded_api):
    sdk = embedded_api.sdk()
    source = upload(sdk, embedding_lines(1, prefix="responses"))
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.batches.create(input_file_id=source.id, endpoint="/v1/responses", completion_window="24h")
    assert refused.value.body["code"] == "unsupported_endpoint"
    assert "/v1/chat/completions, /v1/embeddings" in refused.value.body["message"]


def test_a_file_mixing_urls_gives_a_failed_batch_naming_the_line(embedded_api):
    sdk = embedded_api.sdk()
    lines = embedding_lines(3, prefix="mixed")
    lines[1] = batch_lines(1, prefix="mixed-chat")[0]
    batch = sdk.batches.create(input_file_id=upload(sdk, lines).id, endpoint="/v1/embeddings",
                               completion_window="24h")
    assert batch.status == "failed"
    [error] = batch.errors.data
    assert (error.line, error.code, error.param) == (2, "invalid_url", "url")
    assert "differs from the batch's endpoint /v1/embeddings" in error.message
