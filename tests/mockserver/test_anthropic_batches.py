"""The mock's Anthropic Message Batches API, driven by the official ``anthropic`` SDK.

Each request's ``params`` is checked and answered as ``/v1/messages`` would; the batch ends
after ``--batch-delay-s``, with injected per-request errors, expiry and cancel.
"""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types.messages import (
    MessageBatch,
    MessageBatchCanceledResult,
    MessageBatchErroredResult,
    MessageBatchExpiredResult,
    MessageBatchIndividualResponse,
    MessageBatchSucceededResult,
)

from dispatcher.tokens import PER_MESSAGE_OVERHEAD, PER_REQUEST_OVERHEAD, estimate_text_tokens
from tests.helpers.mock_provider import MockProvider

DELAY_S = 0.3
MODEL = "claude-mock-1"


def sdk(provider: MockProvider, api_key: str = "sk-ant-test") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=provider.root_url, api_key=api_key, max_retries=0)


def request(index: int, content: str | None = None, **params: Any) -> dict[str, Any]:
    text = content if content is not None else f"question {index}"
    params = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **params}
    return {"custom_id": f"req-{index}", "params": params}


def wait_until_ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 10.0) -> MessageBatch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended" or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def results_of(client: anthropic.Anthropic, batch_id: str) -> dict[str, MessageBatchIndividualResponse]:
    return {entry.custom_id: entry for entry in client.messages.batches.results(batch_id)}


@pytest.fixture(scope="module")
def shared_provider():
    with MockProvider(batch_delay_s=DELAY_S) as provider:
        yield provider


@pytest.fixture
def provider(shared_provider: MockProvider) -> MockProvider:
    shared_provider.reset()
    return shared_provider


def test_a_50_request_batch_ends_with_every_message_and_its_usage(provider):
    requests = [request(i) for i in range(50)]
    with sdk(provider) as client:
        batch = client.messages.batches.create(requests=requests)
        assert isinstance(batch, MessageBatch) and batch.processing_status == "in_progress"
        assert batch.request_counts.processing == 50 and batch.results_url is None
        assert (batch.expires_at - batch.created_at).total_seconds() == 24 * 3600
        batch = wait_until_ended(client, batch.id)
        assert batch.request_counts.succeeded == 50 and batch.request_counts.processing == 0
        assert batch.ended_at is not None and batch.results_url.endswith(f"/v1/messages/batches/{batch.id}/results")
        results = results_of(client, batch.id)

    assert sorted(results) == sorted(item["custom_id"] for item in requests)
    for item in requests:
        result = results[item["custom_id"]].result
        assert isinstance(result, MessageBatchSucceededResult)
        question = item["params"]["messages"][0]["content"]
        message = result.message
        assert message.model == MODEL and message.content[0].text == f"Mock reply to: {question}"
        expected_input = PER_REQUEST_OVERHEAD + PER_MESSAGE_OVERHEAD + estimate_text_tokens(question)
        assert message.usage.input_tokens == expected_input
        assert message.usage.output_tokens == estimate_text_tokens(f"Mock reply to: {question}")


def test_injected_errors_are_errored_results_with_anthropic_error_bodies(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_line_error_rate=0.5, seed=3)
    with sdk(provider) as client:
        batch = wait_until_ended(client, client.messages.batches.create(requests=[request(i) for i in range(40)]).id)
        results = results_of(client, batch.id)
    errored = [entry.result for entry in results.values() if isinstance(entry.result, MessageBatchErroredResult)]
    succeeded = [entry for entry in results.values() if isinstance(entry.result, MessageBatchSucceededResult)]
    assert batch.request_counts.errored == len(errored) > 0 and batch.request_counts.succeeded == len(succeeded) > 0
    assert len(errored) + len(succeeded) == 40
    assert {result.error.error.type for result in errored} == {"api_error", "rate_limit_error"}
    assert all(result.error.type == "error" and result.error.request_id for result in errored)


def test_a_directive_error_is_that_requests_error_only(provider):
    with sdk(provider) as client:
        created = client.messages.batches.create(requests=[request(0), request(1, "[[mock:status=529]]")])
        results = results_of(client, wait_until_ended(client, created.id).id)
    assert isinstance(results["req-0"].result, MessageBatchSucceededResult)
    assert results["req-1"].result.error.error.type == "overloaded_error"


def test_an_expiring_batch_ends_with_the_rest_expired(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_expire=True)
    with sdk(provider) as client:
        batch = wait_until_ended(client, client.messages.batches.create(requests=[request(i) for i in range(10)]).id)
        results = results_of(client, batch.id)
    assert batch.request_counts.succeeded == 5 and batch.request_counts.expired == 5
    assert sum(isinstance(entry.result, MessageBatchExpiredResult) for entry in results.values()) == 5


def test_cancel_goes_canceling_then_ends_with_the_rest_canceled(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=1.0)
    with sdk(provider) as client:
        created = client.messages.batches.create(requests=[request(i) for i in range(100)])
        time.sleep(0.5)
        canceling = client.messages.batches.cancel(created.id)
        assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
        done = canceling.request_counts.succeeded
        assert 0 < done < 100
        batch = wait_until_ended(client, created.id)
        results = results_of(client, created.id)
    assert batch.request_counts.succeeded == done and batch.request_counts.canceled == 100 - done
    canceled = {key for key, entry in results.items() if isinstance(entry.result, MessageBatchCanceledResult)}
    assert canceled == {f"req-{i}" for i in range(done, 100)}
    assert provider.stats()["batches"]["anthropic"]["cancels"] == 1


def test_params_are_checked_as_the_messages_route_checks_a_body(provider):
    with sdk(provider) as client:
        with pytest.raises(anthropic.BadRequestError, match=r"requests\.1\.params: .*max_tokens"):
            client.messages.batches.create(requests=[request(0), {"custom_id": "b", "params": {
                "model": MODEL, "messages": [{"role": "user", "content": "hi"}]}}])
        with pytest.raises(anthropic.BadRequestError, match="Duplicate custom_id"):
            client.messages.batches.create(requests=[request(0), request(0)])
    assert provider.stats()["batches"]["anthropic"]["batches_created"] == 0


def test_over_the_request_limit_is_refused(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_max_lines=5)
    with sdk(provider) as client:
        with pytest.raises(anthropic.BadRequestError, match="at most 5 items"):
            client.messages.batches.create(requests=[request(i) for i in range(6)])
        assert client.messages.batches.create(requests=[request(i) for i in range(5)]).request_counts.processing == 5


def test_the_default_limit_is_100000_requests(provider):
    body = {"requests": [request(i) for i in range(100_001)]}
    headers = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
    answer = httpx.post(f"{provider.root_url}/v1/messages/batches", json=body, headers=headers, timeout=60)
    assert answer.status_code == 400 and "at most 100000 items" in answer.json()["error"]["message"]


def test_results_and_delete_wait_for_the_end_and_list_pages_newest_first(provider):
    with sdk(provider) as client:
        made = [client.messages.batches.create(requests=[request(i)]).id for i in range(3)]
        with pytest.raises(anthropic.AnthropicError, match="results_url"):
            list(client.messages.batches.results(made[0]))
        page = client.messages.batches.list(limit=2)
        assert [batch.id for batch in page.data] == made[::-1][:2] and page.has_more
        assert [batch.id for batch in client.messages.batches.list(limit=2)][:3] == made[::-1]
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve("msgbatch_nope")
        with pytest.raises(anthropic.BadRequestError, match="before it has ended"):
            client.messages.batches.delete(made[0])
        wait_until_ended(client, made[0])
        assert client.messages.batches.delete(made[0]).type == "message_batch_deleted"
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve(made[0])


def test_stats_count_creations_and_requests_per_batch(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=DELAY_S)
    with sdk(provider) as client:
        first = client.messages.batches.create(requests=[request(i) for i in range(4)])
        second = client.messages.batches.create(requests=[request(i) for i in range(3, 6)])
    counts = provider.stats()["batches"]["anthropic"]
    assert counts["batches_created"] == 2 and counts["lines"] == 7 and counts["duplicate_lines"] == 1
    assert counts["by_batch"] == {first.id: 4, second.id: 3}
    assert provider.stats()["requests"] == 0


def test_the_key_and_version_are_checked_as_on_messages(start_mock_provider):
    provider = start_mock_provider(api_key="sk-ant-right", batch_delay_s=DELAY_S)
    with sdk(provider, api_key="sk-ant-wrong") as client, pytest.raises(anthropic.AuthenticationError):
        client.messages.batches.create(requests=[request(0)])
    answer = httpx.get(f"{provider.root_url}/v1/messages/batches", headers={"x-api-key": "sk-ant-right"})
    assert answer.status_code == 400 and "anthropic-version" in answer.json()["error"]["message"]
    with sdk(provider, api_key="sk-ant-right") as client:
        assert client.messages.batches.create(requests=[request(0)]).processing_status == "in_progress"


def test_a_body_over_the_byte_limit_is_refused_413(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_max_bytes=1000)
    with sdk(provider) as client, pytest.raises(anthropic.APIStatusError) as refused:
        client.messages.batches.create(requests=[request(i) for i in range(20)])
    assert refused.value.status_code == 413 and refused.value.body["error"]["type"] == "request_too_large"
