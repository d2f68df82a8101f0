"""The API in a fleet: ``serve`` on PostgreSQL and Redis stores and reads, a separate
``llm-dispatch worker`` runs the jobs against the HTTP mock provider."""

from __future__ import annotations

import statistics
import time

import openai
import pytest

from dispatcher.api.chat import FALLBACK_FIRST_LOOK_S

from tests.api.conftest import batch_lines, read_lines, start_api, upload, wait_for_batch, write_api_config
from tests.conftest import openai_deployment
from tests.e2e.workers import WorkerFleet

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def fleet_api(tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider):
    provider = start_mock_provider()
    config = write_api_config(
        tmp_path, database_url=postgres_url,
        deployments=[("chat", openai_deployment(provider)), ("other", openai_deployment(provider))],
        settings={"redis_url": redis_server, "namespace": redis_namespace},
    )
    api = start_api(config, "--workers", "2")
    fleet = WorkerFleet(config, processes=1)
    yield api, provider
    fleet.stop()
    api.close()


def test_batches_and_completions_run_through_a_worker_fleet(fleet_api):
    api, provider = fleet_api
    sdk = api.sdk(api.make_key("fleet"))
    lines = batch_lines(30, prefix="fleet")
    source = upload(sdk, lines)
    batch = sdk.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions",
                               completion_window="24h", extra_body={"priority": "low"})
    completion = sdk.chat.completions.create(model="other", messages=[{"role": "user", "content": "fleet?"}],
                                             extra_body={"priority": "urgent"})
    assert completion.choices[0].message.content == "Mock reply to: fleet?"

    batch = wait_for_batch(sdk, batch.id)
    assert batch.status == "completed" and batch.request_counts.completed == 30
    output = read_lines(sdk, batch.output_file_id)
    assert [o["custom_id"] for o in output] == [line["custom_id"] for line in lines]
    assert all(o["response"]["body"]["choices"][0]["message"]["content"]
               == f"Mock reply to: {line['body']['messages'][0]['content']}" for o, line in zip(output, lines))
    assert batch.id in [b.id for b in sdk.batches.list()]
    stats = provider.stats()
    assert stats["completed"] == 31 and stats["duplicates"] == 0

    # Completions are answered when announced, not when polled: the worker is woken by a
    # signal and announces the result; without those, each would wait for dramatiq's consumer
    # (100 ms) and the route's first look at SQL (0.5 s).
    took = []
    for i in range(7):
        start = time.monotonic()
        reply = sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": f"quick {i}"}])
        took.append(time.monotonic() - start)
        assert reply.choices[0].message.content == f"Mock reply to: quick {i}"
    assert statistics.median(took) < FALLBACK_FIRST_LOOK_S * 0.8, took


def test_bad_lines_and_refusals_on_postgresql(fleet_api):
    api, _provider = fleet_api
    key = api.sdk(api.make_key("pg", models=["chat"]))
    lines = batch_lines(3, prefix="pgbad")
    lines[1] = "{not json"
    batch = key.batches.create(input_file_id=upload(key, lines).id, endpoint="/v1/chat/completions",
                               completion_window="24h")
    assert batch.status == "failed" and [(e.line, e.code) for e in batch.errors.data] == [(2, "invalid_json")]
    with pytest.raises(openai.PermissionDeniedError):
        key.batches.create(input_file_id=upload(key, batch_lines(1, prefix="pgother", model="other")).id,
                           endpoint="/v1/chat/completions", completion_window="24h")
    assert [b.id for b in key.batches.list()] == [batch.id]
    other = api.sdk(api.make_key("pg-other"))
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
