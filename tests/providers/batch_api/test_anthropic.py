"""AnthropicBatchApi against the mock provider's Message Batches API, over real HTTP."""

from __future__ import annotations

import logging
import time

import orjson
import pytest

from dispatcher.providers import errors as pe
from dispatcher.providers.base import Usage
from dispatcher.providers.batch_api import LineKind, RemoteStatus, UnsupportedBatchRequest, batch_api_for
from dispatcher.providers.batch_api.anthropic import AnthropicBatchApi, line_result
from tests.providers.batch_api.helpers import (
    CHAT, DELAY_S, EMBEDDINGS, chat_job, deployment, results_by_id, run_async, wait_until_ended, write_part,
)

MODEL = "claude-sonnet-4-5-20250929"
KEY = "sk-ant-api03-batch-test-0123456789"
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
    "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}}}
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def anthropic_api(provider, **params) -> tuple[AnthropicBatchApi, object]:
    target = deployment(f"anthropic/{MODEL}", provider.root_url, **{"api_key": KEY, **params})
    api = batch_api_for(target)
    assert isinstance(api, AnthropicBatchApi)
    return api, target


async def submit(api, target, folder, jobs, name="part-1"):
    path = write_part(api, target, folder, jobs, name=name)
    assert await api.upload(name, path) is None and await api.find_upload(name, 0) is None
    return await api.create(name, None, path, CHAT)


def test_lines_are_message_batch_requests_and_untranslatable_bodies_are_refused():
    target = deployment(f"anthropic/{MODEL}", "http://127.0.0.1:9", api_key=KEY, batch_max_lines=10)
    api = AnthropicBatchApi(target)
    assert (api.max_lines, api.max_bytes) == (10, 256_000_000)
    line = orjson.loads(api.encode_line("job-1", orjson.dumps({"model": MODEL, "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}), CHAT))
    assert line == {"custom_id": "job-1", "params": {
        "model": MODEL, "max_tokens": target.default_max_tokens, "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}]}}
    for custom_id, body, endpoint in [
        ("job-2", b'{"model":"m","input":"x"}', EMBEDDINGS),
        ("job-3", orjson.dumps({"model": MODEL, "n": 2, "messages": [{"role": "user", "content": "x"}]}), CHAT),
        ("job-4", b"not json", CHAT),
        ("job 5!", orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}]}), CHAT),
    ]:
        with pytest.raises(UnsupportedBatchRequest):
            api.encode_line(custom_id, body, endpoint)


@run_async
async def test_a_round_trip_answers_in_openai_shape_with_usage(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S, api_key=KEY)
    api, target = anthropic_api(provider)
    try:
        jobs = {f"job-{i}": chat_job(i) for i in range(10)}
        jobs["json-1"] = chat_job(10, response_format=JSON_FORMAT)
        jobs["tool-1"] = chat_job(11, tools=[WEATHER_TOOL], tool_choice="required")
        created = await submit(api, target, tmp_path, jobs)
        assert created.status == RemoteStatus.RUNNING and created.created_at
        remote = await wait_until_ended(api, created.id)
        assert remote.status == RemoteStatus.ENDED and remote.output_ref.endswith("/results")
        results = await results_by_id(api, remote)
        assert set(results) == set(jobs)
        for custom_id, result in results.items():
            assert result.kind == LineKind.SUCCEEDED and result.status_code == 200
            body = orjson.loads(result.body)
            assert body["object"] == "chat.completion" and body["model"] == MODEL
            assert result.usage == Usage.from_openai(body["usage"]) and result.usage.prompt_tokens > 0
        message = orjson.loads(results["job-3"].body)["choices"][0]["message"]
        assert "question 3" in message["content"]
        json_answer = orjson.loads(results["json-1"].body)["choices"][0]
        assert orjson.loads(json_answer["message"]["content"]) == {"answer": "mock"}
        assert json_answer["finish_reason"] == "stop" and "tool_calls" not in json_answer["message"]
        tool_answer = orjson.loads(results["tool-1"].body)["choices"][0]
        assert tool_answer["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    finally:
        await api.aclose()


@run_async
async def test_find_created_matches_count_and_time_and_leaves_out_known_batches(
        start_mock_provider, tmp_path, caplog):
    provider = start_mock_provider(batch_delay_s=DELAY_S)
    api, target = anthropic_api(provider)
    try:
        since = time.time()
        assert await api.find_created("part-1", None, 2, since, ()) is None
        first = await submit(api, target, tmp_path, {"a": chat_job(1), "b": chat_job(2)})
        await submit(api, target, tmp_path, {"c": chat_job(3)}, name="part-2")
        assert await api.find_created("part-1", None, 2, since, ()) == first.id
        assert await api.find_created("part-1", None, 2, since, {first.id}) is None
        assert await api.find_created("part-1", None, 3, since, ()) is None
        assert await api.find_created("part-1", None, 2, since + 3600, ()) is None
        second = await submit(api, target, tmp_path, {"d": chat_job(4), "e": chat_job(5)}, name="part-3")
        with caplog.at_level(logging.WARNING, logger="dispatcher.providers.batch_api.anthropic"):
            assert await api.find_created("part-1", None, 2, since, ()) == first.id  # the oldest
        assert "2 Anthropic batches" in caplog.text
        assert await api.find_created("part-3", None, 2, since, {first.id}) == second.id
    finally:
        await api.aclose()


@run_async
async def test_find_created_pages_through_long_listings(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S)
    api, target = anthropic_api(provider)
    try:
        since = time.time()
        first = await submit(api, target, tmp_path, {"a": chat_job(1), "b": chat_job(2)})
        for index in range(101):
            await submit(api, target, tmp_path, {"c": chat_job(3)}, name=f"filler-{index}")
        assert await api.find_created("part-1", None, 2, since, ()) == first.id
    finally:
        await api.aclose()


@run_async
async def test_errored_lines_are_classified_and_retryable(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_line_error_rate=0.5, seed=3)
    api, target = anthropic_api(provider)
    try:
        jobs = {f"job-{i}": chat_job(i) for i in range(30)}
        remote = await wait_until_ended(api, (await submit(api, target, tmp_path, jobs)).id)
        results = await results_by_id(api, remote)
        errored = [result for result in results.values() if result.kind == LineKind.ERRORED]
        assert errored and len(errored) < len(jobs)
        for result in errored:
            assert result.status_code in (429, 500) and result.body is None
            assert isinstance(result.error, pe.RateLimitError if result.status_code == 429 else pe.ServerError)
            assert result.error.retryable
    finally:
        await api.aclose()


@run_async
async def test_an_expired_batch_gives_expired_lines(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_expire=True)
    api, target = anthropic_api(provider)
    try:
        jobs = {f"job-{i}": chat_job(i) for i in range(10)}
        remote = await wait_until_ended(api, (await submit(api, target, tmp_path, jobs)).id)
        kinds = {result.kind for result in (await results_by_id(api, remote)).values()}
        assert kinds == {LineKind.SUCCEEDED, LineKind.EXPIRED}
    finally:
        await api.aclose()


@run_async
async def test_cancel_ends_the_batch_with_the_rest_canceled(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=5)
    api, target = anthropic_api(provider)
    try:
        created = await submit(api, target, tmp_path, {f"job-{i}": chat_job(i) for i in range(10)})
        canceling = await api.cancel(created.id)
        assert (canceling.status, canceling.provider_status) == (RemoteStatus.RUNNING, "canceling")
        remote = await wait_until_ended(api, created.id)
        assert remote.status == RemoteStatus.ENDED
        results = await results_by_id(api, remote)
        assert LineKind.CANCELED in {result.kind for result in results.values()}
    finally:
        await api.aclose()


@run_async
async def test_a_request_anthropic_refuses_fails_the_create_call(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S)
    api, _ = anthropic_api(provider)
    try:
        path = tmp_path / "part.jsonl"
        path.write_bytes(b'{"custom_id":"a","params":{"model":"m"}}\n')
        with pytest.raises(pe.BadRequestError) as caught:
            await api.create("part-1", None, path, CHAT)
        assert "requests.0.params" in caught.value.message
    finally:
        await api.aclose()


@run_async
async def test_a_wrong_key_is_an_authentication_error_that_does_not_show_it(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S, api_key=KEY)
    wrong = "sk-ant-api03-wrong-0123456789"
    api, target = anthropic_api(provider, api_key=wrong)
    try:
        with pytest.raises(pe.AuthenticationError) as caught:
            await submit(api, target, tmp_path, {"a": chat_job(1)})
        assert wrong not in str(caught.value) and wrong not in str(caught.value.body)
        with pytest.raises(pe.AuthenticationError):
            await api.find_created("part-1", None, 1, 0, ())
    finally:
        await api.aclose()


def test_result_lines_map_each_error_type_to_its_class():
    def errored(error_type: str) -> pe.ProviderError:
        line = {"custom_id": "a", "result": {"type": "errored", "error": {
            "type": "error", "error": {"type": error_type, "message": "why"}}}}
        return line_result(orjson.dumps(line)).error

    assert isinstance(errored("invalid_request_error"), pe.BadRequestError)
    assert isinstance(errored("authentication_error"), pe.AuthenticationError)
    assert isinstance(errored("not_found_error"), pe.NotFoundError)
    assert isinstance(errored("request_too_large"), pe.BadRequestError)
    assert isinstance(errored("overloaded_error"), pe.ServerError)
    assert errored("overloaded_error").status_code == 529
    canceled = line_result(b'{"custom_id":"a","result":{"type":"canceled"}}')
    assert canceled.kind == LineKind.CANCELED


def test_results_are_fetched_from_our_api_base_whatever_host_the_url_names():
    api = AnthropicBatchApi(deployment(f"anthropic/{MODEL}", "http://127.0.0.1:9", api_key=KEY))
    assert str(api._results_url("https://api.anthropic.com/v1/messages/batches/b1/results?x=1")) == \
        "http://127.0.0.1:9/v1/messages/batches/b1/results?x=1"
    same = "http://127.0.0.1:9/v1/messages/batches/b1/results"
    assert str(api._results_url(same)) == same
