"""AnthropicProvider over real HTTP, against a small Messages API server on 127.0.0.1.

The server records what it received and answers what each test scripts; its Messages and
errors are checked with the official ``anthropic`` SDK's types before they are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import anthropic.types
import orjson
import pytest
from aiohttp import web

from dispatcher.config.loader import parse_config
from dispatcher.deployments import build_deployments
from dispatcher.engine.execution import request_body
from dispatcher.pricing import price_for
from dispatcher.providers import errors as pe
from dispatcher.providers.anthropic.adapter import AnthropicProvider, messages_url
from dispatcher.providers.anthropic.request import JSON_TOOL_NAME
from dispatcher.providers.base import Usage
from dispatcher.providers.http import EndpointPool
from dispatcher.providers.provider_set import ProviderSet, request_checks

MODEL = "claude-sonnet-4-5-20250929"
KEY = "sk-ant-api03-test-key-0123456789"


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class MessagesServer:
    """Answers POST /v1/messages with the next scripted Reply; keeps what it received."""

    replies: list[Reply] = field(default_factory=list)
    received: list[tuple[dict[str, str], dict]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.json()))
        reply = self.replies.pop(0)
        return web.Response(status=reply.status, body=orjson.dumps(reply.body), headers=reply.headers,
                            content_type="application/json")


@contextlib.asynccontextmanager
async def _server(*replies: Reply) -> AsyncIterator[MessagesServer]:
    server = MessagesServer(list(replies))
    app = web.Application()
    app.router.add_post("/v1/messages", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


def _message(content: list[dict], stop_reason: str = "end_turn", **usage) -> dict:
    message = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": MODEL,
        "content": content, "stop_reason": stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 6, **usage},
    }
    anthropic.types.Message.model_validate(message)
    return message


def _error(error_type: str, message: str) -> dict:
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_01"}
    anthropic.types.ErrorResponse.model_validate(body)
    return body


def _deployment(api_base: str, model: str = f"anthropic/{MODEL}", settings: dict | None = None, **params):
    config = parse_config({"model_list": [{"model_name": "claude", "litellm_params": {
        "model": model, "api_base": api_base, "api_key": KEY, **params}}],
        "dispatcher_settings": settings or {}})
    return build_deployments(config).by_id["claude#0"]


async def _call(server: MessagesServer, body: dict, timeout: float = 5.0, **params):
    """One call as the engine makes it: the stored body (no model) with the deployment's defaults."""
    pool = EndpointPool(max_in_flight=2)
    try:
        deployment = _deployment(server.url, **params)
        return await AnthropicProvider(deployment, pool).complete(
            request_body(orjson.dumps(body).decode(), deployment), timeout
        )
    finally:
        await pool.aclose()


def _run(replies: list[Reply], body: dict, **params):
    """(completion or error, what the server received)."""
    async def main():
        async with _server(*replies) as server:
            try:
                result = await _call(server, body, **params)
            except pe.ProviderError as error:
                result = error
            return result, server.received
    return asyncio.run(main())


HELLO = {"messages": [{"role": "user", "content": "Hello, Claude"}], "max_tokens": 100}


def test_plain_chat_headers_body_and_answer():
    reply = Reply(body=_message([{"type": "text", "text": "Hello!"}]), headers={
        "request-id": "req_018EeWyXxfu5pfWkrYcMdjWG",
        "anthropic-ratelimit-requests-remaining": "99",
        "anthropic-ratelimit-tokens-remaining": "79000",
    })
    completion, [(headers, sent)] = _run([reply], HELLO, extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert "Authorization" not in headers
    assert sent == {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "Hello, Claude"}]}
    answer = orjson.loads(completion.body)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello!"}
    assert completion.usage == Usage(12, 6, 18, cached_tokens=0, cache_creation_tokens=0)
    assert completion.request_id == "req_018EeWyXxfu5pfWkrYcMdjWG"
    assert completion.rate_limits.remaining_requests == 99 and completion.rate_limits.remaining_tokens == 79000


def test_default_max_tokens_is_sent():
    reply = Reply(body=_message([{"type": "text", "text": "ok"}]))
    _, [(_, sent)] = _run([reply], {"messages": HELLO["messages"]})
    assert sent["max_tokens"] == 1024  # dispatcher_settings.default_max_tokens, by default
    _, [(_, sent)] = _run([reply], {"messages": HELLO["messages"]}, settings={"default_max_tokens": 777})
    assert sent["max_tokens"] == 777
    _, [(_, sent)] = _run([reply], {"messages": HELLO["messages"]}, max_tokens=300)
    assert sent["max_tokens"] == 300  # litellm_params.max_tokens, a body default


def test_tools_round_trip():
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}}}}}
    reply = Reply(body=_message([{"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                                   "input": {"location": "Paris"}}], stop_reason="tool_use"))
    completion, [(_, sent)] = _run([reply], {**HELLO, "tools": [tool], "tool_choice": "required"})
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["tools"][0]["input_schema"] == tool["function"]["parameters"]
    choice = orjson.loads(completion.body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"location":"Paris"}'}


def test_json_schema_answer_is_the_content():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    reply = Reply(body=_message([{"type": "tool_use", "id": "toolu_02", "name": JSON_TOOL_NAME,
                                   "input": {"city": "Paris"}}], stop_reason="tool_use"))
    completion, [(_, sent)] = _run([reply], {**HELLO, "response_format": {
        "type": "json_schema", "json_schema": {"name": "place", "schema": schema}}})
    assert sent["tool_choice"] == {"type": "tool", "name": JSON_TOOL_NAME}
    choice = orjson.loads(completion.body)["choices"][0]
    assert orjson.loads(choice["message"]["content"]) == {"city": "Paris"}
    assert choice["finish_reason"] == "stop"


def test_image_is_sent_as_a_base64_block():
    reply = Reply(body=_message([{"type": "text", "text": "An ant."}]))
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    _, [(_, sent)] = _run([reply], {"messages": [{"role": "user", "content": [
        image, {"type": "text", "text": "What is this?"}]}]})
    assert sent["messages"][0]["content"][0] == {
        "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


def test_usage_with_cache_counts_and_its_cost():
    reply = Reply(body=_message([{"type": "text", "text": "ok"}], cache_creation_input_tokens=1000,
                                cache_read_input_tokens=5000))
    completion, _ = _run([reply], HELLO)
    assert completion.usage == Usage(6012, 6, 6018, cached_tokens=5000, cache_creation_tokens=1000)
    price = price_for(_deployment("http://127.0.0.1:1"))  # claude-sonnet-4-5: $3 in, $3.75 write, $0.30 read, $15 out
    assert price.cost(completion.usage) == pytest.approx((12 * 3 + 1000 * 3.75 + 5000 * 0.30 + 6 * 15) / 1e6)


@pytest.mark.parametrize("status, error_type, message, headers, cls", [
    (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit",
     {"retry-after": "7"}, pe.RateLimitError),
    (529, "overloaded_error", "Overloaded", {}, pe.ServerError),
    (500, "api_error", "Internal server error", {}, pe.ServerError),
    (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", {},
     pe.ContextWindowExceededError),
    (400, "invalid_request_error", "messages.0.content: Field required", {}, pe.BadRequestError),
    (401, "authentication_error", "invalid x-api-key", {}, pe.AuthenticationError),
    (403, "permission_error", "Your API key does not have permission to use the specified resource.", {},
     pe.AuthenticationError),
    (404, "not_found_error", f"model: {MODEL}", {}, pe.NotFoundError),
    (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", {}, pe.BadRequestError),
])
def test_error_classes_over_http(status, error_type, message, headers, cls):
    if error_type == "request_too_large":  # in Anthropic's errors page, not in the SDK's ErrorType
        body = {"type": "error", "error": {"type": error_type, "message": message}}
    else:
        body = _error(error_type, message)
    error, _ = _run([Reply(status, body, headers)], HELLO)
    assert type(error) is cls
    assert error.status_code == status and error.message == message
    if status == 429:
        assert error.retry_after == 7.0


def test_a_body_anthropic_cannot_take_is_refused_before_sending():
    error, received = _run([], {**HELLO, "logit_bias": {"50256": -100}})
    assert type(error) is pe.BadRequestError
    assert "logit_bias" in error.message
    assert error.request_sent is False
    assert received == []


def test_a_success_that_is_not_a_message_is_invalid():
    error, _ = _run([Reply(200, {"choices": []})], HELLO)
    assert type(error) is pe.InvalidResponseError


def test_an_echoed_key_is_scrubbed_from_the_answer():
    reply = Reply(body=_message([{"type": "text", "text": f"your key is {KEY}"}]))
    completion, _ = _run([reply], HELLO)
    assert KEY.encode() not in completion.body


def test_missing_key_variable(monkeypatch):
    monkeypatch.delenv("LLMD_TEST_UNSET_ANTHROPIC_KEY", raising=False)
    error, received = _run([], HELLO, api_key="os.environ/LLMD_TEST_UNSET_ANTHROPIC_KEY")
    assert type(error) is pe.MissingCredentialsError and received == []


def test_unreachable_endpoint():
    async def main():
        pool = EndpointPool(max_in_flight=1)
        try:
            provider = AnthropicProvider(_deployment("http://127.0.0.1:9"), pool)
            await provider.complete(orjson.dumps({"model": MODEL, **HELLO}), 2.0)
        finally:
            await pool.aclose()
    with pytest.raises(pe.ProviderUnreachableError):
        asyncio.run(main())


@pytest.mark.parametrize("api_base", [
    "https://api.anthropic.com", "https://api.anthropic.com/", "https://api.anthropic.com/v1",
    "https://api.anthropic.com/v1/messages",
])
def test_messages_url_from_api_base(api_base):
    assert messages_url(api_base) == "https://api.anthropic.com/v1/messages"


def test_config_defaults_and_bare_claude_names():
    config = parse_config({"model_list": [
        {"model_name": "haiku", "litellm_params": {"model": "claude-3-5-haiku-20241022"}},
        {"model_name": "sonnet", "litellm_params": {"model": f"anthropic/{MODEL}"}},
    ]})
    deployments = build_deployments(config)
    haiku, sonnet = deployments.by_id["haiku#0"], deployments.by_id["sonnet#0"]
    for deployment in (haiku, sonnet):
        assert deployment.adapter == "anthropic"
        assert deployment.api_base == "https://api.anthropic.com"
        assert deployment.api_key.env_name == "ANTHROPIC_API_KEY"
    assert haiku.provider_model == "claude-3-5-haiku-20241022"
    assert isinstance(ProviderSet(deployments, 4).get("sonnet#0"), AnthropicProvider)


def test_request_checks_for_groups_served_by_anthropic():
    config = parse_config({"model_list": [
        {"model_name": "claude", "litellm_params": {"model": f"anthropic/{MODEL}", "temperature": 1.5}},
        {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o-mini"}},
    ]})
    checks = request_checks(build_deployments(config))
    assert set(checks) == {"claude"}
    problem = checks["claude"]({"messages": [{"role": "user", "content": "hi"}]})
    assert problem.startswith("body.temperature") and f"anthropic/{MODEL}" in problem
    assert checks["claude"]({"messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}) is None
