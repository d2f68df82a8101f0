"""Batches through the providers' own batch APIs (``--via provider-batch``), run by the engine
against the HTTP mock provider's OpenAI Files + Batches and Anthropic Message Batches: every
answer mapped back to its custom_id, no realtime call, one upload per provider batch, cost at
the batch price, splitting, per-line errors retried realtime, cancel, ``auto``."""

from __future__ import annotations

import pytest

from dispatcher import Client
from tests.conftest import chat_lines, openai_deployment
from tests.engine.test_engine import run_engine_until_done
from tests.helpers.sql import CALLS, query

PRICE_IN, PRICE_OUT = 1e-6, 4e-6
FAST_BATCHES = {"check_interval": 0.1, "first_poll": 0.1, "max_poll_interval": 0.3}


def config_for(write_config, database_url, provider, **params):
    deployment = openai_deployment(provider, input_cost_per_token=PRICE_IN, output_cost_per_token=PRICE_OUT,
                                   **params)
    return write_config([("chat", deployment)],
                        settings={"database_url": database_url, "provider_batches": FAST_BATCHES})


def test_a_batch_through_openai_batches_answers_every_line_at_half_price(write_config, database_url,
                                                                       start_mock_provider):
    provider = start_mock_provider(batch_delay_s=0.3)
    with Client(config_for(write_config, database_url, provider)) as client:
        batch = client.submit(chat_lines(300, model="chat"), via="provider-batch")
        assert client.status(batch.batch_id).via == "provider-batch"
        run_engine_until_done(client, batch.batch_id)
        info = client.status(batch.batch_id)
        results = {line["custom_id"]: line for line in client.results(batch.batch_id)}
        assert len(results) == 300 and info.succeeded == 300
        for i in range(300):
            body = results[f"job-{i}"]["response"]["body"]
            assert body["choices"][0]["message"]["content"] == f"Mock reply to: job prompt number {i}"
        stats = provider.stats()
        assert stats["batches"]["openai"]["files_uploaded"] == 1
        assert stats["batches"]["openai"]["batches_created"] == 1
        assert stats["by_route"].get("openai.chat", {}).get("requests", 0) == 0
        expected = (info.prompt_tokens * PRICE_IN + info.completion_tokens * PRICE_OUT) / 2
        assert info.prompt_tokens > 0 and abs(info.cost - expected) < 1e-12
        routes = query(database_url, "SELECT route, count(*) FROM attempts GROUP BY route")
        assert routes == [("provider-batch", 300)]
        [part] = info.provider_batches
        assert part["state"] == "imported" and part["lines"] == 300 and part["remote_id"]


def run_engine_until(client: Client, batch_id: str, statuses: tuple[str, ...] = ("completed",),
                     during=None, timeout: float = 30):
    """Run a worker engine in this process until the batch reaches one of ``statuses``;
    ``during(info)`` is called at each look (it may cancel, say)."""
    import asyncio
    import time

    from dispatcher.engine.engine import Engine

    engine = Engine(config=client.config, deployments=client.deployments, database=client.database,
                    backends=client.backends)

    async def main():
        running = asyncio.create_task(engine.run())
        deadline = time.monotonic() + timeout
        while True:
            info = await asyncio.to_thread(client.status, batch_id)
            if info.status in statuses:
                break
            assert time.monotonic() < deadline, info
            assert not running.done(), running.exception()
            if during is not None:
                await asyncio.to_thread(during, info)
            await asyncio.sleep(0.05)
        engine.request_stop()
        await running

    asyncio.run(main())
    return client.status(batch_id)


def realtime_requests(provider) -> int:
    return provider.stats()["by_route"].get("openai.chat", {}).get("requests", 0)


def test_a_batch_over_the_line_limit_is_split_with_one_upload_per_part(write_config, sqlite_url,
                                                                      start_mock_provider):
    provider = start_mock_provider(batch_delay_s=0.2, batch_max_lines=500)
    with Client(config_for(write_config, sqlite_url, provider, batch_max_lines=500)) as client:
        batch = client.submit(chat_lines(2000, model="chat"), via="provider-batch")
        info = run_engine_until(client, batch.batch_id)
        assert info.succeeded == 2000
        assert sorted(p["lines"] for p in info.provider_batches) == [500] * 4
        assert len({p["remote_id"] for p in info.provider_batches}) == 4
        results = list(client.results(batch.batch_id))
    assert [line["custom_id"] for line in results] == [f"job-{i}" for i in range(2000)]
    assert all(line["response"]["body"]["choices"][0]["message"]["content"] == f"Mock reply to: job prompt number {i}"
               for i, line in enumerate(results))
    expected = (info.prompt_tokens * PRICE_IN + info.completion_tokens * PRICE_OUT) / 2
    assert abs(info.cost - expected) < 1e-12
    batches = provider.stats()["batches"]["openai"]
    assert (batches["files_uploaded"], batches["batches_created"], batches["lines"]) == (4, 4, 2000)
    assert batches["duplicate_lines"] == 0 and realtime_requests(provider) == 0


def test_lines_the_provider_batch_failed_are_retried_realtime(write_config, database_url, start_mock_provider):
    provider = start_mock_provider(batch_delay_s=0.2, batch_line_error_rate=0.2)
    with Client(config_for(write_config, database_url, provider)) as client:
        batch = client.submit(chat_lines(200, model="chat"), via="provider-batch")
        info = run_engine_until(client, batch.batch_id)
        results = {line["custom_id"]: line for line in client.results(batch.batch_id)}
    assert info.succeeded == 200 and len(results) == 200
    errored = query(database_url, "SELECT count(*) FROM attempts WHERE route = 'provider-batch' AND outcome = 'error'")[0][0]
    realtime = query(database_url, f"SELECT count(*) FROM {CALLS} AS a WHERE route IS NULL AND outcome = 'success'")[0][0]
    assert 10 <= errored <= 70  # about a fifth failed at the provider (429 or 500)...
    assert realtime == errored == realtime_requests(provider)  # ...and each ran once realtime
    # The retried lines cost the realtime price, the others half of it.
    priced = query(database_url, "SELECT coalesce(route, 'realtime'), sum(prompt_tokens), sum(completion_tokens),"
                                 f" sum(cost) FROM {CALLS} AS a WHERE outcome = 'success' GROUP BY 1 ORDER BY 1")
    for route, prompt, completion, cost in priced:
        share = 0.5 if route == "provider-batch" else 1.0
        assert abs(cost - share * (prompt * PRICE_IN + completion * PRICE_OUT)) < 1e-12


def test_lines_of_an_expired_provider_batch_run_realtime(write_config, sqlite_url, start_mock_provider):
    provider = start_mock_provider(batch_delay_s=0.2, batch_expire=True)
    with Client(config_for(write_config, sqlite_url, provider)) as client:
        batch = client.submit(chat_lines(100, model="chat"), via="provider-batch")
        info = run_engine_until(client, batch.batch_id)
        usage = {row["key"]: row for row in client.usage(by="route")}
    assert info.succeeded == 100
    assert usage["provider-batch"]["requests"] == 50 and usage["realtime"]["requests"] == 50
    assert realtime_requests(provider) == 50


def test_cancel_cancels_the_provider_batch_and_keeps_what_finished(write_config, database_url, start_mock_provider):
    provider = start_mock_provider(batch_delay_s=3.0)
    asked = []

    def cancel_once_submitted(info):
        if not asked and any(p["state"] == "submitted" for p in info.provider_batches):
            asked.append(client.cancel(info.id))

    with Client(config_for(write_config, database_url, provider)) as client:
        batch = client.submit(chat_lines(100, model="chat"), via="provider-batch")
        info = run_engine_until(client, batch.batch_id, ("cancelled",), during=cancel_once_submitted)
    assert asked and info.status == "cancelled"
    assert info.succeeded + info.cancelled == 100 and info.cancelled > 0 and info.failed == 0
    stats = provider.stats()["batches"]["openai"]
    assert stats["cancels"] == 1 and realtime_requests(provider) == 0


def test_cancel_before_the_provider_batch_is_sent_sends_nothing(write_config, sqlite_url, start_mock_provider):
    provider = start_mock_provider(batch_delay_s=0.2)
    with Client(config_for(write_config, sqlite_url, provider)) as client:
        batch = client.submit(chat_lines(50, model="chat"), via="provider-batch")
        info = client.cancel(batch.batch_id)
        assert info.status == "cancelled" and info.cancelled == 50
    assert provider.stats()["batches"]["openai"]["files_uploaded"] == 0


@pytest.mark.parametrize(("priority", "window", "route"), [
    ("bulk", "24h", "provider-batch"), ("low", "48h", "provider-batch"),
    ("normal", "24h", "realtime"), ("bulk", "1h", "realtime"),
])
def test_auto_chooses_by_priority_and_window(write_config, sqlite_url, start_mock_provider, priority, window, route):
    provider = start_mock_provider()
    with Client(config_for(write_config, sqlite_url, provider)) as client:
        batch = client.submit(chat_lines(3, model="chat"), via="auto", priority=priority, completion_window=window)
        assert client.status(batch.batch_id).via == route
        statuses = query(sqlite_url, "SELECT DISTINCT status FROM jobs")
    assert statuses == [("held",)] if route == "provider-batch" else [("queued",)]


def test_a_group_without_a_batch_api_runs_realtime_under_auto_and_is_refused_under_provider_batch(
        write_config, sqlite_url):
    config = write_config([("local", {"model": "mock/echo"})],
                          settings={"database_url": sqlite_url, "default_via": "auto", "default_priority": 9})
    with Client(config) as client:
        batch = client.submit(chat_lines(2, model="local"))
        assert client.status(batch.batch_id).via == "realtime"
        with pytest.raises(Exception, match="'local' have no deployment with a batch API"):
            client.submit(chat_lines(2, model="local"), via="provider-batch")


ANTHROPIC_KEY = "sk-ant-route-test"


def test_a_2000_line_batch_through_anthropic_message_batches_at_half_price(write_config, database_url,
                                                                         start_mock_provider):
    from dispatcher.pricing import CLAUDE_PRICES_PER_MTOK

    provider = start_mock_provider(batch_delay_s=0.3, api_key=ANTHROPIC_KEY, batch_line_error_rate=0.05)
    claude = {"model": "anthropic/claude-haiku-4-5", "api_base": provider.root_url, "api_key": ANTHROPIC_KEY}
    config = write_config([("claude", claude)],
                          settings={"database_url": database_url, "provider_batches": FAST_BATCHES})
    with Client(config) as client:
        batch = client.submit(chat_lines(2000, model="claude"), via="provider-batch")
        info = run_engine_until(client, batch.batch_id, timeout=60)
        results = {line["custom_id"]: line for line in client.results(batch.batch_id)}
        usage = {row["key"]: row for row in client.usage(by="route")}
    assert info.succeeded == 2000 and len(results) == 2000
    for i in (0, 999, 1999):
        body = results[f"job-{i}"]["response"]["body"]
        assert body["object"] == "chat.completion"  # OpenAI's shape, as realtime Claude answers are stored
        assert body["choices"][0]["message"]["content"] == f"Mock reply to: job prompt number {i}"
    stats = provider.stats()
    assert stats["batches"]["anthropic"]["batches_created"] == 1
    retried = usage["provider-batch"]["failures"]
    assert 40 <= retried <= 170  # about 5% errored at the provider, then ran realtime, once each
    assert stats["by_route"]["anthropic.messages"]["requests"] == retried == usage["realtime"]["requests"]
    price_in, _write, _read, price_out = CLAUDE_PRICES_PER_MTOK["claude-haiku-4-5"]
    batch_part = usage["provider-batch"]
    expected = (batch_part["prompt_tokens"] * price_in + batch_part["completion_tokens"] * price_out) / 2e6
    assert abs(batch_part["cost"] - expected) < 1e-9


def test_a_provider_batch_the_provider_refuses_ends_its_lines_without_hanging(write_config, sqlite_url,
                                                                             start_mock_provider):
    provider = start_mock_provider(batch_delay_s=0.2, api_key="sk-the-right-key")
    wrong_key = "sk-a-wrong-key-1234567890"
    with Client(config_for(write_config, sqlite_url, provider, api_key=wrong_key)) as client:
        batch = client.submit(chat_lines(20, model="chat"), via="provider-batch")
        info = run_engine_until(client, batch.batch_id)
        errors = list(client.results(batch.batch_id, failed=True))
        [part] = client.status(batch.batch_id).provider_batches
    assert info.failed == 20 and len(errors) == 20
    # the realtime route then gets the provider's own 401, and does not retry it
    assert {line["response"]["status_code"] for line in errors} == {401}
    assert {line["response"]["body"]["error"]["code"] for line in errors} == {"invalid_api_key"}
    assert part["state"] == "imported" and "AuthenticationError" in part["last_problem"]
    assert wrong_key not in repr(errors) and wrong_key not in repr(part)
    assert provider.stats()["batches"]["openai"]["files_uploaded"] == 0
