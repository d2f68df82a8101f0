"""/v1/chat/completions and /v1/models with the openai SDK: answers through the queue, with
priorities from the body or the X-Priority header."""

from __future__ import annotations

import threading
import time

import openai
import pytest

from tests.api.conftest import batch_lines, upload, wait_for_batch

pytestmark = pytest.mark.slow

BATCH_ID_HEADER = "x-dispatcher-batch-id"


def _priority_of(sdk, raw_response) -> int:
    return sdk.batches.retrieve(raw_response.headers[BATCH_ID_HEADER]).model_extra["priority"]


def test_a_completion_comes_back_with_the_provider_body(embedded_api):
    sdk = embedded_api.sdk()
    completion = sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello there"}], max_tokens=20)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Mock reply to: hello there"
    assert completion.usage.prompt_tokens > 0


def test_priority_from_the_body_or_the_header(embedded_api):
    sdk = embedded_api.sdk()
    messages = [{"role": "user", "content": "which priority?"}]
    default = sdk.chat.completions.with_raw_response.create(model="chat", messages=messages)
    assert _priority_of(sdk, default) == 5
    by_body = sdk.chat.completions.with_raw_response.create(model="chat", messages=messages,
                                                            extra_body={"priority": "urgent"})
    assert _priority_of(sdk, by_body) == 0
    by_header = sdk.chat.completions.with_raw_response.create(model="chat", messages=messages,
                                                              extra_headers={"X-Priority": "7"})
    assert _priority_of(sdk, by_header) == 7
    both = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=messages, extra_body={"priority": 1}, extra_headers={"X-Priority": "bulk"})
    assert _priority_of(sdk, both) == 1  # the body wins
    assert by_body.parse().choices[0].message.content == "Mock reply to: which priority?"


def test_an_urgent_completion_overtakes_a_bulk_batch(embedded_api):
    """4 calls at a time, 24 bulk requests of 0.5 s queued first: the urgent completion is
    claimed next, so it is answered while most of the batch still waits."""
    sdk = embedded_api.sdk()
    lines = batch_lines(24, prefix="bulk")
    for line in lines:
        line["body"]["messages"][0]["content"] += " [[mock:sleep=0.5]]"
    bulk = sdk.batches.create(input_file_id=upload(sdk, lines).id, endpoint="/v1/chat/completions",
                              completion_window="24h", extra_body={"priority": "bulk"})
    time.sleep(0.3)  # the first bulk calls are in flight
    started = time.monotonic()
    completion = sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "now"}],
                                             extra_headers={"X-Priority": "urgent"})
    waited = time.monotonic() - started
    assert completion.choices[0].message.content == "Mock reply to: now"
    during = sdk.batches.retrieve(bulk.id)
    assert during.status == "in_progress" and during.request_counts.completed <= 12, during.request_counts
    assert waited < 2.0
    assert wait_for_batch(sdk, bulk.id).request_counts.completed == 24


def test_completions_run_side_by_side(embedded_api):
    sdk = embedded_api.sdk()
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        reply = sdk.chat.completions.create(model="other", messages=[{"role": "user", "content": f"q{i}"}])
        answers[i] = reply.choices[0].message.content

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == {i: f"Mock reply to: q{i}" for i in range(8)}


def test_a_client_that_hangs_up_cancels_its_completion(embedded_api):
    key = embedded_api.make_key("impatient")
    with pytest.raises(openai.APITimeoutError):
        embedded_api.sdk(key, timeout=1.0).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "slow [[mock:sleep=3]]"}])
    sdk = embedded_api.sdk(key)
    library = embedded_api.library()
    [owner] = [k.id for k in library.list_keys() if k.name.startswith("impatient-")]
    [completion] = library.list_batches(owner=owner, kind="completion")  # not in the key's batch list
    assert wait_for_batch(sdk, completion.id).status == "cancelled"


def test_refused_completions(embedded_api):
    sdk = embedded_api.sdk()
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError) as streamed:
        sdk.chat.completions.create(model="chat", messages=messages, stream=True)
    assert streamed.value.param == "stream" and "batch" in streamed.value.message
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.chat.completions.create(model="gpt-nothing", messages=messages)
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as priority:
        sdk.chat.completions.create(model="chat", messages=messages, extra_headers={"X-Priority": "11"})
    assert priority.value.param == "priority"
    with pytest.raises(openai.BadRequestError) as no_messages:
        sdk.chat.completions.create(model="chat", messages=[])
    assert no_messages.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as forbidden:
        sdk.chat.completions.create(model="chat", messages=messages, extra_body={"api_base": "http://evil"})
    assert "api_base" in forbidden.value.message


def test_a_provider_refusal_is_passed_on_and_not_retried(embedded_api):
    sdk = embedded_api.sdk(max_retries=2)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "[[mock:context_window]]"}])
    assert refused.value.code == "context_length_exceeded"
    assert refused.value.response.headers["x-should-retry"] == "false"


def test_models_lists_the_model_groups(embedded_api):
    sdk = embedded_api.sdk()
    assert [m.id for m in sdk.models.list()] == ["chat", "other"]
    model = sdk.models.retrieve("other")
    assert (model.id, model.object, model.owned_by) == ("other", "model", "llm-dispatcher")
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("gpt-nothing")


def test_completions_are_not_listed_as_batches_but_their_batch_can_be_read(embedded_api):
    key = embedded_api.sdk(embedded_api.make_key("lister"))
    raw = key.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "not a batch"}])
    batch_id = raw.headers[BATCH_ID_HEADER]
    batch = key.batches.create(input_file_id=upload(key, batch_lines(2)).id, endpoint="/v1/chat/completions",
                               completion_window="24h")
    listed = [b.id for b in key.batches.list()]
    assert listed == [batch.id]  # the completion's one-line batch is not in the caller's list
    behind = key.batches.retrieve(batch_id)  # but the id its answer named can be read
    assert behind.status == "completed" and behind.request_counts.completed == 1
