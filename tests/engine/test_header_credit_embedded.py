"""Header credit in one process (SQLite, in-process limits): a per-minute Anthropic provider's
``anthropic-ratelimit-*`` room (requests, input and output tokens) is spent at once, and the
provider never refuses a call. Measured at the HTTP mock provider."""

from __future__ import annotations

from dispatcher import Client
from tests.conftest import chat_lines
from tests.engine.test_anthropic_through_the_engine import CLAUDE, MOCK_KEY
from tests.engine.test_engine import run_engine_until_done
from tests.helpers.mock_provider import assert_room_spent_at_once

JOBS = 40


def test_a_per_minute_anthropic_providers_room_is_spent_at_once(write_config, sqlite_url, start_mock_provider):
    # 60 requests, 20,000 input and 4,000 output tokens per minute: the even pace would send
    # one call a second (40 s for 40 jobs).
    limits = {"rpm": 60, "itpm": 20_000, "otpm": 4_000}
    provider = start_mock_provider(api_key=MOCK_KEY, window_s=60, latency_ms=30, **limits)
    deployment = {"model": f"anthropic/{CLAUDE}", "api_base": provider.root_url, "api_key": MOCK_KEY, **limits}
    config = write_config([("chat", deployment)], settings={"database_url": sqlite_url})
    with Client(config) as client:
        batch = client.submit(chat_lines(JOBS, model="chat", max_tokens=16))
        run_engine_until_done(client, batch.batch_id, timeout=60)
    assert_room_spent_at_once(provider, JOBS)
