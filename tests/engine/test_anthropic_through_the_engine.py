"""Claude deployments (``anthropic/``) run by the engine against the HTTP mock provider's strict
Messages API (``/v1/messages``: key, version and body checked as Anthropic does): results in
OpenAI's chat shape, usage and cost at Claude's prices, tools and JSON schema, images, 529s
retried, a context-window fallback from Claude to another group. In this process, on SQLite,
on the in-process backends."""

from __future__ import annotations

import json

from dispatcher import Client
from dispatcher.pricing import CLAUDE_PRICES_PER_MTOK
from tests.conftest import chat_lines, openai_deployment
from tests.engine.test_engine import run_engine_until_done
from tests.helpers.sql import CALLS, query

MOCK_KEY = "sk-ant-mock-key"
CLAUDE = "claude-haiku-4-5"
RED_DOT = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
           "hKmMIQAAAABJRU5ErkJggg==")


def claude(provider, **extra) -> dict:
    return {"model": f"anthropic/{CLAUDE}", "api_base": provider.root_url, "api_key": MOCK_KEY, **extra}


def run(client: Client, lines: list[dict]) -> tuple[list[dict], list[dict], object]:
    batch = client.submit(lines)
    run_engine_until_done(client, batch.batch_id)
    return (list(client.results(batch.batch_id)), list(client.results(batch.batch_id, failed=True)),
            client.status(batch.batch_id))


def test_claude_answers_in_openai_shape_with_usage_and_cost(write_config, sqlite_url, start_mock_provider):
    provider = start_mock_provider(api_key=MOCK_KEY)
    config = write_config([("claude", claude(provider))], settings={"database_url": sqlite_url})
    with Client(config) as client:
        results, errors, info = run(client, chat_lines(4, model="claude"))
    assert errors == []
    bodies = [line["response"]["body"] for line in results]
    assert [b["object"] for b in bodies] == ["chat.completion"] * 4
    assert [b["choices"][0]["message"]["content"] for b in bodies] == [
        f"Mock reply to: job prompt number {i}" for i in range(4)]
    assert {b["choices"][0]["finish_reason"] for b in bodies} == {"stop"}
    route = provider.stats()["by_route"]["anthropic.messages"]
    assert route["requests"] == 4 and route["duplicates"] == 0
    prompt = sum(b["usage"]["prompt_tokens"] for b in bodies)
    completion = sum(b["usage"]["completion_tokens"] for b in bodies)
    assert prompt > 0 and completion > 0 and (info.prompt_tokens, info.completion_tokens) == (prompt, completion)
    price_in, _write, _read, price_out = CLAUDE_PRICES_PER_MTOK[CLAUDE]
    assert abs(info.cost - (prompt * price_in + completion * price_out) / 1e6) < 1e-12


def test_tools_json_schema_and_images_go_through_the_strict_mock(write_config, sqlite_url, start_mock_provider):
    provider = start_mock_provider(api_key=MOCK_KEY)
    config = write_config([("claude", claude(provider))], settings={"database_url": sqlite_url})
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
        "type": "object", "properties": {"verdict": {"type": "string"}}, "required": ["verdict"]}}}
    lines = [
        {"custom_id": "tool", "model": "claude", "messages": [{"role": "user", "content": "weather in Oslo?"}],
         "tools": [weather], "tool_choice": "required"},
        {"custom_id": "json", "model": "claude", "messages": [{"role": "user", "content": "judge this"}],
         "response_format": schema},
        {"custom_id": "image", "model": "claude", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what colour?"}, {"type": "image_url", "image_url": {"url": RED_DOT}}]}]},
        {"custom_id": "system", "model": "claude", "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"},
            {"role": "user", "content": "again"}]},
    ]
    with Client(config) as client:
        results, errors, _info = run(client, lines)
    assert errors == [], errors
    by_id = {line["custom_id"]: line["response"]["body"]["choices"][0] for line in results}
    [call] = by_id["tool"]["message"]["tool_calls"]
    assert by_id["tool"]["finish_reason"] == "tool_calls" and call["function"]["name"] == "get_weather"
    assert "city" in json.loads(call["function"]["arguments"])
    assert "verdict" in json.loads(by_id["json"]["message"]["content"])  # the forced tool's input, as content
    assert by_id["image"]["message"]["content"].startswith("Mock reply to:")
    assert by_id["system"]["message"]["content"] == "Mock reply to: hello again"  # the user turns merged


def test_overloaded_529s_are_retried_and_nothing_is_sent_twice(write_config, sqlite_url, start_mock_provider):
    provider = start_mock_provider(api_key=MOCK_KEY, overload_rate=0.3, seed=7)
    config = write_config([("claude", claude(provider))], router={"num_retries": 8},
                          settings={"database_url": sqlite_url, "retry_backoff_base": 0.01})
    with Client(config) as client:
        results, errors, _info = run(client, chat_lines(20, model="claude"))
    route = provider.stats()["by_route"]["anthropic.messages"]
    assert errors == [] and len(results) == 20
    assert route["by_status"].get("529", 0) > 0  # some were overloaded, and retried
    assert route["completed"] == 20 and route["duplicates"] == 0


def test_a_prompt_too_long_for_claude_falls_back_to_another_group(
    write_config, sqlite_url, start_mock_provider
):
    """Anthropic's 400 "prompt is too long" is a context-window error: the job moves to the
    group named in context_window_fallbacks. (The mocks read the prompt's directive on every
    route, so the fallback answers too long as well: what is checked is where it went.)"""
    provider = start_mock_provider(api_key=MOCK_KEY)
    other = start_mock_provider()
    config = write_config(
        [("claude", claude(provider)), ("long", openai_deployment(other))],
        router={"context_window_fallbacks": [{"claude": ["long"]}]},
        settings={"database_url": sqlite_url},
    )
    line = {"custom_id": "big", "model": "claude", "messages": [{"role": "user", "content": "huge [[mock:context_window]]"}]}
    with Client(config) as client:
        _results, errors, _info = run(client, [line])
    assert provider.stats()["by_route"]["anthropic.messages"]["by_status"] == {"400": 1}  # once, not retried
    assert other.stats()["by_route"]["openai.chat"]["requests"] == 1  # then the fallback group
    [error] = errors
    assert error["response"]["body"]["error"]["code"] == "context_length_exceeded"
    attempts = query(sqlite_url, f"SELECT deployment_id FROM {CALLS} AS a ORDER BY ended_at")
    assert [a.deployment_id for a in attempts] == ["claude#0", "long#0"]


def test_anthropic_429s_pause_the_deployment_and_lose_nothing(write_config, sqlite_url, start_mock_provider):
    """The config claims 4x what the provider allows: Anthropic's 429s (retry-after and
    anthropic-ratelimit-*-reset) are obeyed as a pause, not hammered through."""
    provider = start_mock_provider(api_key=MOCK_KEY, rpm=10, window_s=1, latency_ms=20)
    config = write_config([("claude", claude(provider, rpm=2400))], router={"num_retries": 20},
                          settings={"database_url": sqlite_url})
    jobs = 30
    with Client(config) as client:
        results, errors, _info = run(client, chat_lines(jobs, model="claude"))
    route = provider.stats()["by_route"]["anthropic.messages"]
    assert errors == [] and len(results) == jobs
    assert route["completed"] == jobs and route["duplicates"] == 0
    # Without pausing, sending at 40/s into 10/s would draw ~3 refusals per success.
    assert route["by_status"].get("429", 0) < jobs
