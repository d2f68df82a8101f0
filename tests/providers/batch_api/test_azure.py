"""Azure OpenAI batches (the OpenAI client at Azure's URLs) against the mock's Azure routes."""

from __future__ import annotations

import time

import orjson
import pytest

from dispatcher.providers import errors as pe
from dispatcher.providers.batch_api import LineKind, RemoteStatus, batch_api_for
from dispatcher.providers.batch_api.azure import batch_urls
from dispatcher.providers.batch_api.openai import OpenAIBatchApi
from tests.providers.batch_api.helpers import (
    CHAT, DELAY_S, chat_job, deployment, run_async, run_batch, wait_until_ended, write_part,
)

KEY = "azure-batch-key-0123456789"
DEPLOYMENT = "gpt-4o-batch"


@pytest.fixture(autouse=True)
def _no_azure_environment(monkeypatch):
    for name in ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_AD_TOKEN", "AZURE_API_BASE", "AZURE_API_VERSION"):
        monkeypatch.delenv(name, raising=False)


def azure_api(provider, **params) -> tuple[OpenAIBatchApi, object]:
    target = deployment(f"azure/{DEPLOYMENT}", provider.root_url, **{"api_key": KEY, **params})
    api = batch_api_for(target)
    assert isinstance(api, OpenAIBatchApi)
    return api, target


def test_urls_follow_the_surface_and_lines_use_azures_url():
    dated = batch_urls("https://res.openai.azure.com/openai", "2024-10-21")
    assert str(dated.url("/files", purpose="batch")) == \
        "https://res.openai.azure.com/openai/files?api-version=2024-10-21&purpose=batch"
    v1 = batch_urls("https://res.openai.azure.com", "v1")
    assert str(v1.url("/batches/b1/cancel")) == "https://res.openai.azure.com/openai/v1/batches/b1/cancel"
    target = deployment(f"azure/{DEPLOYMENT}", "https://res.openai.azure.com", api_key=KEY)
    api = batch_api_for(target)
    line = orjson.loads(api.encode_line("a", b'{"model":"gpt-4o-batch","messages":[]}', CHAT))
    assert line["url"] == "/chat/completions" and line["body"]["model"] == DEPLOYMENT
    assert api.max_lines == 100_000


@pytest.mark.parametrize("api_version", ["2024-10-21", "v1"])
def test_a_batch_round_trip_on_each_surface(start_mock_provider, tmp_path, api_version):
    provider = start_mock_provider(batch_delay_s=DELAY_S, api_key=KEY)

    @run_async
    async def main():
        api, target = azure_api(provider, api_version=api_version)
        try:
            jobs = {f"job-{i}": chat_job(i) for i in range(5)}
            since = time.time()
            path = write_part(api, target, tmp_path, jobs)
            remote, results = await run_batch(api, path)
            assert set(results) == set(jobs)
            for result in results.values():
                assert result.kind == LineKind.SUCCEEDED and result.usage.prompt_tokens > 0
                body = orjson.loads(result.body)
                assert body["model"] == DEPLOYMENT and "prompt_filter_results" in body  # Azure's answer
            file_id = await api.find_upload("part-1", since)
            assert file_id is not None
            assert await api.find_created("part-1", file_id, 5, since, ()) == remote.id
            await api.delete_file(file_id)
            assert await api.find_upload("part-1", since) is None
        finally:
            await api.aclose()

    main()


@run_async
async def test_an_entra_token_is_sent_as_a_bearer_token(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S, api_key=KEY)
    api, target = azure_api(provider, api_key=None, azure_ad_token=KEY)
    try:
        path = write_part(api, target, tmp_path, {"a": chat_job(1)})
        created = await api.create("part-1", await api.upload("part-1", path), path, CHAT)
        assert (await wait_until_ended(api, created.id)).status == RemoteStatus.ENDED
    finally:
        await api.aclose()


@run_async
async def test_a_wrong_key_is_an_authentication_error_that_does_not_show_it(start_mock_provider, tmp_path):
    provider = start_mock_provider(batch_delay_s=DELAY_S, api_key=KEY)
    wrong = "azure-wrong-key-0123456789"
    api, target = azure_api(provider, api_key=wrong)
    try:
        with pytest.raises(pe.AuthenticationError) as caught:
            await api.upload("part-1", write_part(api, target, tmp_path, {"a": chat_job(1)}))
        assert wrong not in str(caught.value) and wrong not in str(caught.value.body)
    finally:
        await api.aclose()


@run_async
async def test_no_credentials_at_all_is_a_missing_credentials_error(start_mock_provider):
    provider = start_mock_provider(batch_delay_s=DELAY_S)
    api, _ = azure_api(provider, api_key=None)
    try:
        with pytest.raises(pe.MissingCredentialsError):
            await api.retrieve("batch_x")
    finally:
        await api.aclose()
