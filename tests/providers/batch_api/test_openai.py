"""OpenAIBatchApi against the mock provider's Files + Batches API, over real HTTP."""

from __future__ import annotations

import time

import orjson
import pytest

from dispatcher.providers import errors as pe
from dispatcher.providers.base import Usage
from dispatcher.providers.batch_api import LineKind, RemoteStatus, UnsupportedBatchRequest, batch_api_for
from dispatcher.providers.batch_api.openai import OpenAIBatchApi
from tests.providers.batch_api.helpers import (
    CHAT, DELAY_S, EMBEDDINGS, chat_job, deployment, results_by_id, run_async, run_batch, wait_until_ended,
    write_part,
)

KEY = "sk-batch-test-0123456789"


def openai_api(provider, **params) -> tuple[OpenAIBatchApi, object]:
    target = deployment("openai/gpt-mock", provider.base_url, **params)
    api = batch_api_for(target)
    assert isinstance(api, OpenAIBatchApi)
    return api, target


def test_lines_splice_the_body_and_name_the_endpoint():
    target = deployment("openai/gpt-mock", "http://127.0.0.1:9/v1")
    api = OpenAIBatchApi(target)
    body = b'{"model":"gpt-mock","messages":[{"role":"user","content":"hi \\u00e9"}]}'
    line = api.encode_line("job-1", body, CHAT)
    assert body in line  # spliced, not re-encoded
    assert orjson.loads(line) == {"custom_id": "job-1", "method": "POST", "url": CHAT, "body": orjson.loads(body)}
    pretty = b'{\n  "model": "gpt-mock",\n  "input": "x"\n}'
    assert orjson.loads(api.encode_line("job-2", pretty, EMBEDDINGS))["body"] == {"model": "gpt-mock", "input": "x"}
    assert b"\n" not in api.encode_line("job-2", pretty, EMBEDDINGS)
    with pytest.raises(UnsupportedBatchRequest):
        api.encode_line("job-3", b"[1, 2]", CHAT)


def test_limits_are_the_providers_capped_by_the_deployments():
    assert (OpenAIBatchApi(deployment("openai/gpt-mock", "http://127.0.0.1:9/v1")).max_lines) == 50_000
    capped = OpenAIBatchApi(deployment("openai/gpt-mock", "http://127.0.0.1:9/v1",
                                       batch_max_lines=10, batch_max_bytes=1000))
    assert (capped.max_lines, capped.max_bytes) == (10, 1000)
    assert OpenAIBatchApi(deployment("openai/gpt-mock", "http://127.0.0.1:9/v1",
                                     batch_max_bytes=10**12)).max_bytes == 200_000_000
    assert batch_api_for(deployment("openai/gpt-mock", "http://127.0.0.1:9/v1", batch_api=False)) is None


@run_async
async def test_a_chat_batch_round_trip_maps_every_line_with_its_usage(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S, api_key=KEY)
    api, target = openai_api(provider)
    try:
        jobs = {f"job-{i}": chat_job(i) for i in range(20)}
        path = write_part(api, target, tmp_path, jobs)
        remote, results = await run_batch(api, path)
        assert remote.provider_status == "completed" and remote.output_ref and remote.error_ref is None
        assert set(results) == set(jobs)
        for custom_id, result in results.items():
            assert result.kind == LineKind.SUCCEEDED and result.status_code == 200
            body = orjson.loads(result.body)
            assert body["object"] == "chat.completion"
            assert f"question {custom_id[4:]}" in body["choices"][0]["message"]["content"]
            assert result.usage == Usage.from_openai(body["usage"]) and result.usage.prompt_tokens > 0
            assert result.request_id
    finally:
        await api.aclose()


@run_async
async def test_an_embeddings_batch_bills_input_only(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S)
    api, target = openai_api(provider)
    try:
        jobs = {f"emb-{i}": orjson.dumps({"input": f"text {i}"}).decode() for i in range(3)}
        remote, results = await run_batch(api, write_part(api, target, tmp_path, jobs, EMBEDDINGS), EMBEDDINGS)
        for result in results.values():
            assert result.kind == LineKind.SUCCEEDED
            assert orjson.loads(result.body)["object"] == "list"
            assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens == 0
    finally:
        await api.aclose()


@run_async
async def test_find_upload_and_find_created_find_what_was_made_and_nothing_else(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S)
    api, target = openai_api(provider)
    try:
        since = time.time()
        assert await api.find_upload("part-1", since) is None
        assert await api.find_created("part-1", None, 2, since, ()) is None
        path = write_part(api, target, tmp_path, {"a": chat_job(1), "b": chat_job(2)})
        file_id = await api.upload("part-1", path)
        other_file = await api.upload("part-2", path)
        assert await api.find_upload("part-1", since) == file_id
        assert await api.find_upload("part-2", since) == other_file
        assert await api.find_upload("part-3", since) is None
        assert await api.find_upload("part-1", since + 3600) is None  # older than asked for
        assert await api.find_created("part-1", file_id, 2, since, ()) is None
        created = await api.create("part-1", file_id, path, CHAT)
        await api.create("part-2", other_file, path, CHAT)
        assert await api.find_created("part-1", file_id, 2, since, ()) == created.id
        assert await api.find_created("part-1", None, 2, since, ()) == created.id  # by its tag
        assert await api.find_created("part-9", file_id, 2, since, ()) == created.id  # by its input
        assert await api.find_created("part-1", file_id, 2, since, {created.id}) is None
        assert await api.find_created("part-3", "file-none", 2, since, ()) is None
    finally:
        await api.aclose()


@run_async
async def test_find_upload_pages_through_long_listings(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S)
    api, target = openai_api(provider)
    try:
        path = write_part(api, target, tmp_path, {"a": chat_job(1)})
        first = await api.upload("part-old", path)
        for index in range(105):
            await api.upload(f"filler-{index}", path)
        assert await api.find_upload("part-old", time.time() - 60) == first
    finally:
        await api.aclose()


@run_async
async def test_line_errors_are_classified_as_realtime_errors_would_be(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_line_error_rate=0.5, seed=7)
    api, target = openai_api(provider)
    try:
        jobs = {f"job-{i}": chat_job(i) for i in range(40)}
        jobs["bad-1"] = chat_job(99, "[[mock:context_window]]")
        remote, results = await run_batch(api, write_part(api, target, tmp_path, jobs))
        assert remote.error_ref is not None and set(results) == set(jobs)
        errored = [r for r in results.values() if r.kind == LineKind.ERRORED and r.custom_id != "bad-1"]
        assert errored and any(r.kind == LineKind.SUCCEEDED for r in results.values())
        for result in errored:
            assert result.status_code in (429, 500) and result.body is None
            assert isinstance(result.error, pe.RateLimitError if result.status_code == 429 else pe.ServerError)
            assert result.error.retryable
        bad = results["bad-1"]
        if bad.kind == LineKind.ERRORED and bad.status_code == 400:  # unless the injected error hit it
            assert isinstance(bad.error, pe.ContextWindowExceededError) and not bad.error.retryable
    finally:
        await api.aclose()


@run_async
async def test_lines_of_an_expired_batch_come_back_expired(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S, batch_expire=True)
    api, target = openai_api(provider)
    try:
        jobs = {f"job-{i}": chat_job(i) for i in range(10)}
        remote, results = await run_batch(api, write_part(api, target, tmp_path, jobs))
        assert remote.provider_status == "expired"
        kinds = [results[custom_id].kind for custom_id in jobs]
        assert LineKind.EXPIRED in kinds and LineKind.SUCCEEDED in kinds
        assert set(kinds) == {LineKind.EXPIRED, LineKind.SUCCEEDED}
    finally:
        await api.aclose()


@run_async
async def test_cancel_ends_the_batch_and_cancelling_again_is_harmless(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=5)
    api, target = openai_api(provider)
    try:
        path = write_part(api, target, tmp_path, {f"job-{i}": chat_job(i) for i in range(10)})
        created = await api.create("part-1", await api.upload("part-1", path), path, CHAT)
        assert created.status == RemoteStatus.RUNNING
        cancelling = await api.cancel(created.id)
        assert cancelling.provider_status in ("cancelling", "cancelled")
        remote = await wait_until_ended(api, created.id)
        assert (remote.status, remote.provider_status) == (RemoteStatus.ENDED, "cancelled")
        again = await api.cancel(created.id)  # the provider refuses; we report it as it is
        assert again.provider_status == "cancelled"
        results = await results_by_id(api, remote)
        assert all(result.kind in (LineKind.SUCCEEDED, LineKind.CANCELED) for result in results.values())
    finally:
        await api.aclose()


@run_async
async def test_a_file_the_provider_refuses_fails_the_whole_batch(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S)
    api, target = openai_api(provider)
    try:
        path = write_part(api, target, tmp_path, {"a": chat_job(1), "b": chat_job(2)})
        with path.open("ab") as part:  # a line for another endpoint
            part.write(api.encode_line("c", b'{"model":"gpt-mock","input":"x"}', EMBEDDINGS) + b"\n")
        created = await api.create("part-1", await api.upload("part-1", path), path, CHAT)
        remote = await wait_until_ended(api, created.id)
        assert remote.status == RemoteStatus.FAILED and remote.provider_status == "failed"
        assert "line 3" in remote.message and "endpoint" in remote.message
    finally:
        await api.aclose()


@run_async
async def test_a_wrong_key_is_an_authentication_error_that_does_not_show_it(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S, api_key=KEY)
    wrong = "sk-wrong-key-abcdef0123456789"
    api, target = openai_api(provider, api_key=wrong)
    try:
        path = write_part(api, target, tmp_path, {"a": chat_job(1)})
        for call in (api.upload("part-1", path), api.find_upload("part-1", 0), api.retrieve("batch_x")):
            with pytest.raises(pe.AuthenticationError) as caught:
                await call
            assert wrong not in caught.value.message and wrong not in str(caught.value.body)
    finally:
        await api.aclose()


@run_async
async def test_deleting_a_file_twice_is_fine_and_unknown_batches_are_not_found(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S)
    api, target = openai_api(provider)
    try:
        file_id = await api.upload("part-1", write_part(api, target, tmp_path, {"a": chat_job(1)}))
        await api.delete_file(file_id)
        await api.delete_file(file_id)
        assert await api.find_upload("part-1", 0) is None
        with pytest.raises(pe.NotFoundError):
            await api.retrieve("batch_missing")
    finally:
        await api.aclose()


@run_async
async def test_an_unreachable_provider_is_a_connection_error():
    api = OpenAIBatchApi(deployment("openai/gpt-mock", "http://127.0.0.1:9/v1"))
    try:
        with pytest.raises(pe.ProviderUnreachableError):
            await api.retrieve("batch_x")
    finally:
        await api.aclose()


def test_error_file_lines_without_a_response_are_classified():
    api = OpenAIBatchApi(deployment("openai/gpt-mock", "http://127.0.0.1:9/v1"))
    line = {"custom_id": "a", "response": None, "error": {"code": "batch_cancelled", "message": "cancelled"}}
    assert api.line_result(orjson.dumps(line)).kind == LineKind.CANCELED
    line["error"] = {"code": "rate_limit_exceeded", "message": "slow down"}
    assert isinstance(api.line_result(orjson.dumps(line)).error, pe.RateLimitError)
    line["error"] = {"code": "invalid_request", "message": "bad"}
    assert isinstance(api.line_result(orjson.dumps(line)).error, pe.BadRequestError)
    line["error"] = {"code": "something_new", "message": "?"}
    error = api.line_result(orjson.dumps(line)).error
    assert type(error) is pe.ProviderError and error.retryable


@run_async
async def test_a_key_variable_that_is_not_set_is_missing_credentials(monkeypatch):
    monkeypatch.delenv("LLMD_TEST_UNSET_BATCH_KEY", raising=False)
    api = OpenAIBatchApi(deployment("openai/gpt-mock", "http://127.0.0.1:9/v1",
                                    api_key="os.environ/LLMD_TEST_UNSET_BATCH_KEY"))
    try:
        with pytest.raises(pe.MissingCredentialsError) as caught:
            await api.find_upload("part-1", 0)
        assert "LLMD_TEST_UNSET_BATCH_KEY" in caught.value.message
    finally:
        await api.aclose()
