"""The mock's file listing and its Azure files + batches routes, driven by the official SDK
(``openai.OpenAI`` and ``openai.AzureOpenAI``), whose types check the answers' shapes."""

from __future__ import annotations

import io
import time

import httpx
import openai
import orjson
import pytest

from tests.helpers.mock_provider import MockProvider

KEY = "azure-mock-key-0123456789"


@pytest.fixture(scope="module")
def provider():
    with MockProvider(batch_delay_s=0.2) as provider:
        yield provider


def test_files_are_listed_newest_first_by_purpose_with_cursor_pages(provider):
    client = openai.OpenAI(base_url=provider.base_url, api_key="sk-test", max_retries=0)
    made = [client.files.create(file=(f"list-{i}.jsonl", io.BytesIO(b"{}\n")), purpose="batch").id
            for i in range(5)]
    client.files.create(file=("other.jsonl", io.BytesIO(b"{}\n")), purpose="fine-tune")
    page = client.files.list(purpose="batch", order="desc", limit=2)
    assert [f.id for f in page.data] == made[::-1][:2] and page.has_more
    listed = [f.id for f in client.files.list(purpose="batch", limit=2)]  # the SDK follows `after`
    assert listed[:5] == made[::-1]
    assert all(f.purpose == "batch" for f in client.files.list(purpose="batch"))
    assert [f.id for f in client.files.list(purpose="batch", order="asc")][-5:] == made


@pytest.mark.parametrize("api_version", ["2024-10-21", None])
def test_azure_files_and_batches_answer_the_azure_sdk(provider, api_version):
    if api_version is None:  # the v1 surface: OpenAI's client at {resource}/openai/v1
        client = openai.OpenAI(base_url=f"{provider.root_url}/openai/v1", api_key="unused",
                               default_headers={"api-key": KEY}, max_retries=0)
    else:
        client = openai.AzureOpenAI(azure_endpoint=provider.root_url, api_key=KEY, api_version=api_version,
                                    max_retries=0)
    line = {"custom_id": "a", "method": "POST", "url": "/chat/completions",
            "body": {"model": "gpt-4o-batch", "messages": [{"role": "user", "content": "hi"}]}}
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(orjson.dumps(line) + b"\n")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/chat/completions",
                                  completion_window="24h")
    deadline = time.monotonic() + 10
    while batch.status not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed", batch.errors
    answer = orjson.loads(client.files.content(batch.output_file_id).content)
    assert answer["custom_id"] == "a" and answer["response"]["body"]["model"] == "gpt-4o-batch"
    assert uploaded.id in [f.id for f in client.files.list(purpose="batch")]


def test_azure_batch_routes_need_an_api_version_and_a_key(provider):
    assert httpx.get(f"{provider.root_url}/openai/batches", headers={"api-key": KEY}).status_code == 404
    assert httpx.get(f"{provider.root_url}/openai/batches?api-version=2024-10-21").status_code == 401
    ok = httpx.get(f"{provider.root_url}/openai/batches?api-version=2024-10-21", headers={"api-key": KEY})
    assert ok.status_code == 200 and ok.json()["object"] == "list"
