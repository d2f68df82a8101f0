"""The mock's ``/v1/messages`` speaks Anthropic's Messages API strictly.

Its answers are parsed by the official ``anthropic`` SDK (typed ``Message`` objects, and the
SDK's own error classes), over real HTTP to a mock provider process.
"""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import Message, TextBlock, ThinkingBlock, ToolUseBlock

from dispatcher.tokens import IMAGE_TOKENS, PER_MESSAGE_OVERHEAD, PER_REQUEST_OVERHEAD, estimate_text_tokens
from tests.helpers.mock_provider import MockProvider

MODEL = "claude-mock-1"
HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def sdk(provider: MockProvider, max_retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=provider.root_url, api_key="sk-ant-test", max_retries=max_retries)


def ask(provider: MockProvider, content: Any, **params: Any) -> Message:
    params.setdefault("max_tokens", 100)
    with sdk(provider) as client:
        return client.messages.create(model=MODEL, messages=[{"role": "user", "content": content}], **params)


def body_for(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": content}], **extra}


def post(provider: MockProvider, body: Any, headers: dict[str, str] = HEADERS,
         path: str = "/v1/messages") -> httpx.Response:
    return httpx.post(provider.root_url + path, json=body, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def shared_provider():
    with MockProvider() as provider:
        yield provider


@pytest.fixture
def provider(shared_provider: MockProvider) -> MockProvider:
    shared_provider.reset()
    return shared_provider


# -- answers -------------------------------------------------------------------------------

def test_text_reply_is_a_typed_message_with_usage_and_request_id(provider):
    with sdk(provider) as client:
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hello"}]
        )
    message = raw.parse()
    assert isinstance(message, Message)
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == MODEL and message.stop_reason == "end_turn" and message.stop_sequence is None
    assert len(message.content) == 1 and isinstance(message.content[0], TextBlock)
    assert message.content[0].text == "Mock reply to: hello"
    usage = message.usage
    assert usage.input_tokens == PER_REQUEST_OVERHEAD + PER_MESSAGE_OVERHEAD + estimate_text_tokens("hello")
    assert usage.output_tokens == estimate_text_tokens("Mock reply to: hello")
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
    assert raw.headers["request-id"]
    assert not any(name.startswith("anthropic-ratelimit") for name in raw.headers)  # no limits set

    again = ask(provider, "hello")
    assert again.model_dump() == message.model_dump()  # deterministic
    stats = provider.stats()
    assert stats["by_route"]["anthropic.messages"]["completed"] == 2
    assert stats["usage"]["prompt_tokens"] == 2 * usage.input_tokens


def test_a_conversation_with_system_blocks_images_and_tool_results(provider):
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this image, and the weather?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "22C and sunny"}]},
    ]
    with sdk(provider) as client:
        message = client.messages.create(
            model=MODEL, max_tokens=100, system=[{"type": "text", "text": "Be brief."}],
            messages=messages, tools=[WEATHER], metadata={"user_id": "u-1"}, stop_sequences=["END"],
            extra_body={"temperature": 0.2, "top_p": 0.9},
        )
    assert message.content[0].text == "Mock reply to: tool result 22C and sunny"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > IMAGE_TOKENS  # the image is counted


def test_forced_tool_gets_tool_use_whose_input_fits_the_schema(provider):
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "score": {"type": "number"},
            "kind": {"enum": ["cat", "dog"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "owner": {"$ref": "#/$defs/Owner"},
            "note": {"type": ["string", "null"]},
        },
        "required": ["name", "age"],
        "$defs": {"Owner": {"type": "object", "properties": {"verified": {"type": "boolean"}}}},
    }
    tool = {"name": "record_pet", "description": "Answer as JSON", "input_schema": schema}
    message = ask(provider, "describe the pet", tools=[WEATHER, tool],
                  tool_choice={"type": "tool", "name": "record_pet", "disable_parallel_tool_use": True})
    assert message.stop_reason == "tool_use"
    (call,) = message.content
    assert isinstance(call, ToolUseBlock) and call.name == "record_pet" and call.id.startswith("toolu_")
    assert call.input == {"name": "mock", "age": 1, "score": 1.0, "kind": "cat", "tags": ["mock"],
                          "owner": {"verified": True}, "note": "mock"}


@pytest.mark.parametrize(
    "tool_choice, prompt, expected_tool",
    [
        ({"type": "any"}, "hi", "get_weather"),
        ({"type": "any"}, "hi [[mock:tool=lookup]]", "lookup"),
        (None, "hi [[mock:tool]]", "get_weather"),
        ({"type": "auto"}, "hi [[mock:tool=lookup]]", "lookup"),
        ({"type": "auto"}, "hi", None),
        ({"type": "none"}, "hi [[mock:tool]]", None),
    ],
)
def test_tool_choice_decides_between_text_and_tool_use(provider, tool_choice, prompt, expected_tool):
    lookup = {"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
    extra = {"tool_choice": tool_choice} if tool_choice else {}
    message = ask(provider, prompt, tools=[WEATHER, lookup], **extra)
    if expected_tool is None:
        assert message.stop_reason == "end_turn" and isinstance(message.content[0], TextBlock)
    else:
        assert message.stop_reason == "tool_use" and message.content[0].name == expected_tool


def test_stop_sequences_max_tokens_and_thinking(provider):
    stopped = ask(provider, "hello", stop_sequences=["reply"])
    assert stopped.content[0].text == "Mock "
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "reply")

    cut = ask(provider, "a long question that gets a long answer", max_tokens=2)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 2
    assert cut.content[0].text == "Mock rep"

    thought = ask(provider, "think first", max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 1024})
    assert isinstance(thought.content[0], ThinkingBlock) and thought.content[0].signature
    assert isinstance(thought.content[1], TextBlock)


def test_prompt_caching_writes_a_prefix_then_reads_it(provider):
    system = [{"type": "text", "text": "You know a lot about cats. " * 40, "cache_control": {"type": "ephemeral"}}]
    prefix = PER_REQUEST_OVERHEAD + PER_MESSAGE_OVERHEAD + estimate_text_tokens(system[0]["text"])

    first = ask(provider, "first question", system=system).usage
    assert first.cache_creation_input_tokens == prefix and first.cache_read_input_tokens == 0
    assert first.cache_creation.ephemeral_5m_input_tokens == prefix

    second = ask(provider, "another question", system=system).usage
    assert second.cache_read_input_tokens == prefix and second.cache_creation_input_tokens == 0
    assert second.input_tokens == PER_MESSAGE_OVERHEAD + estimate_text_tokens("another question")

    # A longer breakpoint with a 1 h TTL writes only what the cache does not hold yet.
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "a document " * 30, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "question"},
    ]}]
    with sdk(provider) as client:
        third = client.messages.create(model=MODEL, max_tokens=50, system=system, messages=messages).usage
    assert third.cache_read_input_tokens == prefix
    assert third.cache_creation.ephemeral_1h_input_tokens == third.cache_creation_input_tokens > 0

    usage = provider.stats()["usage"]
    assert usage["cache_read_input_tokens"] == 2 * prefix
    assert usage["cache_creation_input_tokens"] == prefix + third.cache_creation_input_tokens
    provider.reset()  # forgets the cache too
    assert ask(provider, "another question", system=system).usage.cache_read_input_tokens == 0


# -- what is refused -----------------------------------------------------------------------

def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


@pytest.mark.parametrize(
    "headers, body, status, error_type, message",
    [
        (_without(HEADERS, "x-api-key"), body_for("hi"), 401, "authentication_error", "x-api-key header is required"),
        (_without(HEADERS, "anthropic-version"), body_for("hi"), 400, "invalid_request_error",
         "anthropic-version: header is required"),
        ({**HEADERS, "anthropic-version": "latest"}, body_for("hi"), 400, "invalid_request_error",
         "anthropic-version: 'latest' is not a valid version"),
        (HEADERS, [1, 2], 400, "invalid_request_error", "not a JSON object"),
        (HEADERS, _without(body_for("hi"), "max_tokens"), 400, "invalid_request_error", "max_tokens: Field required"),
        (HEADERS, body_for("hi", max_tokens=0), 400, "invalid_request_error",
         "max_tokens: Input should be greater than or equal to 1"),
        (HEADERS, body_for("hi", max_tokens="10"), 400, "invalid_request_error",
         "max_tokens: Input should be a valid integer"),
        (HEADERS, _without(body_for("hi"), "model"), 400, "invalid_request_error", "model: Field required"),
        (HEADERS, {**body_for("hi"), "messages": []}, 400, "invalid_request_error", "at least one message is required"),
        (HEADERS, {**body_for("hi"), "messages": [{"role": "assistant", "content": "hi"}]}, 400,
         "invalid_request_error", 'messages: first message must use the "user" role'),
        (HEADERS, {**body_for("hi"), "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
         400, "invalid_request_error",
         'roles must alternate between "user" and "assistant", but found multiple "user" roles in a row'),
        (HEADERS, {**body_for("hi"), "messages": [{"role": "system", "content": "be nice"}]}, 400,
         "invalid_request_error", "messages.0.role: Input should be 'user' or 'assistant'"),
        (HEADERS, body_for("hi", n=2), 400, "invalid_request_error", "n: Extra inputs are not permitted"),
        (HEADERS, body_for([{"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}]), 400,
         "invalid_request_error", "messages.0.content.0.type: Input tag 'image_url' found"),
        (HEADERS, body_for([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%%%"}}]),
         400, "invalid_request_error", "not valid base64"),
        (HEADERS, body_for([{"type": "text", "text": "hi", "name": "x"}]), 400, "invalid_request_error",
         "messages.0.content.0.name: Extra inputs are not permitted"),
        (HEADERS, body_for(""), 400, "invalid_request_error", "all messages must have non-empty content"),
        (HEADERS, body_for([{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]), 400,
         "invalid_request_error", "unexpected `tool_use_id` found in `tool_result` blocks: toolu_9"),
        (HEADERS, {**body_for("hi"), "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}}]},
            {"role": "user", "content": "and?"},
        ]}, 400, "invalid_request_error",
         "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_2"),
        (HEADERS, body_for("hi", tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]), 400,
         "invalid_request_error", "tools.0.custom.name"),
        (HEADERS, body_for("hi", tools=[{"name": "f", "parameters": {"type": "object"}}]), 400,
         "invalid_request_error", "tools.0.custom.parameters: Extra inputs are not permitted"),
        (HEADERS, body_for("hi", tools=[WEATHER], tool_choice="auto"), 400, "invalid_request_error",
         "tool_choice.type: Input should be"),
        (HEADERS, body_for("hi", tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"}), 400,
         "invalid_request_error", "tool 'nope' was not found in tools"),
        (HEADERS, body_for("hi", temperature=1.5), 400, "invalid_request_error",
         "temperature: Input should be between 0 and 1"),
        (HEADERS, body_for("hi", stop_sequences=["  "]), 400, "invalid_request_error", "must contain non-whitespace"),
        (HEADERS, body_for("hi", system=[{"type": "text", "text": ""}]), 400, "invalid_request_error",
         "system: text content blocks must be non-empty"),
        (HEADERS, body_for("hi", stream=True), 400, "invalid_request_error", "does not stream"),
    ],
)
def test_checks_refuse_what_anthropic_refuses_in_its_words(provider, headers, body, status, error_type, message):
    answer = post(provider, body, headers)
    assert answer.status_code == status
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == error_type
    assert message in error["error"]["message"]
    assert error["request_id"] == answer.headers["request-id"]
    assert provider.stats()["completed"] == 0


def test_the_sdk_raises_its_own_classes_for_refusals(start_mock_provider):
    provider = start_mock_provider(api_key="sk-ant-right")
    with pytest.raises(anthropic.AuthenticationError) as refused:
        ask(provider, "hi")  # the SDK's default key is sk-ant-test
    assert refused.value.type == "authentication_error" and "sk-ant-test" not in str(refused.value)
    with anthropic.Anthropic(base_url=provider.root_url, api_key="sk-ant-right", max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "assistant", "content": "hi"}])
        assert bad.value.request_id and bad.value.type == "invalid_request_error"
        assert client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    # The key in x-api-key, as the adapter sends it, works as well as the SDK's Bearer.
    assert post(provider, body_for("hi"), {**HEADERS, "x-api-key": "sk-ant-right"}).status_code == 200


@pytest.mark.parametrize(
    "status, error_class, error_type",
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.ContentTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_status_directives_give_anthropic_errors_the_sdk_classifies(provider, status, error_class, error_type):
    with pytest.raises(error_class) as raised:
        ask(provider, f"fail [[mock:status={status}]]")
    assert raised.value.status_code == status and raised.value.type == error_type


def test_context_window_refusal_and_invalid_json_directives(provider):
    with pytest.raises(anthropic.BadRequestError) as too_long:
        ask(provider, "long [[mock:context_window]]")
    assert too_long.value.api_message.startswith("prompt is too long: ")

    refused = ask(provider, "bad idea [[mock:content_policy]]")
    assert refused.stop_reason == "refusal" and isinstance(refused.content[0], TextBlock)

    broken = post(provider, body_for("[[mock:invalid_json]]"))
    assert broken.status_code == 200 and broken.headers["content-type"].startswith("text/html")

    echoed = post(provider, body_for("[[mock:echo_key]]")).json()
    assert echoed["content"][0]["text"] == "You called me with: x-api-key: sk-ant-test"
    stats = provider.stats()["by_route"]["anthropic.messages"]
    assert stats["by_status"] == {"200": 3, "400": 1} and stats["completed"] == 2  # refusal and echo billed


# -- limits and faults ---------------------------------------------------------------------

def _rfc3339(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def test_rate_limits_answer_429_rate_limit_error_with_anthropic_headers(start_mock_provider):
    provider = start_mock_provider(rpm=2, itpm=1000, otpm=1000, window_s=30)
    with sdk(provider) as client:
        answers = [client.messages.with_raw_response.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": f"q{i}"}]) for i in range(2)]
        assert [a.headers["anthropic-ratelimit-requests-remaining"] for a in answers] == ["1", "0"]
        first = answers[0]
        assert first.headers["anthropic-ratelimit-requests-limit"] == "2"
        input_tokens = first.parse().usage.input_tokens
        assert first.headers["anthropic-ratelimit-input-tokens-remaining"] == str(1000 - input_tokens)
        # Output counts max_tokens while the call is in flight, the real count afterwards.
        assert answers[1].headers["anthropic-ratelimit-output-tokens-remaining"] == str(
            1000 - first.parse().usage.output_tokens - 100)
        reset = _rfc3339(first.headers["anthropic-ratelimit-requests-reset"])
        assert 0 < (reset - datetime.now(timezone.utc)).total_seconds() <= 31
        assert "anthropic-ratelimit-tokens-limit" not in first.headers  # no --tpm

        with pytest.raises(anthropic.RateLimitError) as limited:
            client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "q3"}])
    error = limited.value
    assert error.type == "rate_limit_error" and "of 2 requests per 30 seconds" in error.api_message
    assert 25 <= int(error.response.headers["retry-after"]) <= 30
    stats = provider.stats()
    assert stats["rate_limited"] == 1 and stats["by_route"]["anthropic.messages"]["rate_limited"] == 1


def test_input_and_output_token_limits_are_enforced_separately(start_mock_provider):
    provider = start_mock_provider(itpm=60, otpm=400, window_s=30)
    body = body_for("x" * 120, max_tokens=10)  # about 37 input tokens
    assert post(provider, body).status_code == 200
    refused = post(provider, body)
    assert refused.status_code == 429 and "60 input tokens per 30 seconds" in refused.json()["error"]["message"]
    assert refused.headers["anthropic-ratelimit-input-tokens-remaining"] == str(60 - 37)

    provider.reset()
    assert post(provider, body_for("a", max_tokens=300)).status_code == 200  # 300 held only in flight
    assert post(provider, body_for("b", max_tokens=300)).status_code == 200  # the first answered: ~5 counted
    too_much = post(provider, body_for("c", max_tokens=500))
    assert too_much.status_code == 429 and "400 output tokens" in too_much.json()["error"]["message"]
    stats = provider.stats(detail=True)
    assert stats["peak_output_tokens_in_window"] == sum(o for _, o in stats["admitted_input_output"])


def test_output_budget_is_held_while_a_call_is_in_flight(start_mock_provider):
    provider = start_mock_provider(otpm=100, latency_ms=3000, window_s=30)

    def slow_call() -> int:
        return post(provider, body_for("slow", max_tokens=80)).status_code

    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(slow_call)
        deadline = time.monotonic() + 2
        while provider.stats()["in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        # The slow call is in flight, holding 80 output tokens.
        refused = post(provider, body_for("quick", max_tokens=30))
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"  # held tokens come back when calls answer
        assert slow.result() == 200
    assert post(provider, body_for("quick", max_tokens=30)).status_code == 200


def test_overload_and_error_rates_apply_and_the_sdk_retries_529(start_mock_provider):
    overloaded = start_mock_provider(overload_rate=1.0)
    with pytest.raises(anthropic.OverloadedError) as raised:
        ask(overloaded, "hi")
    assert raised.value.status_code == 529 and raised.value.api_message == "Overloaded"
    with sdk(overloaded, max_retries=1) as client, pytest.raises(anthropic.OverloadedError):
        client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert overloaded.stats()["by_route"]["anthropic.messages"]["by_status"] == {"529": 3}  # 1 + 1 try + 1 retry

    failing = start_mock_provider(error_rate=1.0)
    with pytest.raises(anthropic.InternalServerError) as failed:
        ask(failing, "hi")
    assert failed.value.status_code == 500 and failed.value.type == "api_error"


def test_fail_first_duplicates_and_the_v1_v1_route(provider):
    flaky = [post(provider, body_for("flaky [[mock:fail_first=1]]")) for _ in range(3)]
    assert [a.status_code for a in flaky] == [500, 200, 200]
    assert flaky[0].json()["error"]["type"] == "api_error"
    # An api_base that already ends in /v1 reaches the same route.
    assert post(provider, body_for("other"), path="/v1/v1/messages").status_code == 200
    # The same text on the OpenAI route is another route and another body shape.
    openai_body = {"model": "m", "messages": [{"role": "user", "content": "other"}]}
    assert httpx.post(provider.base_url + "/chat/completions", json=openai_body, timeout=10).status_code == 200
    stats = provider.stats()
    routes = stats["by_route"]
    assert routes["anthropic.messages"] == {"requests": 4, "by_status": {"200": 3, "500": 1}, "completed": 3,
                                            "duplicates": 1, "rate_limited": 0}
    assert routes["openai.chat"]["completed"] == 1 and routes["openai.chat"]["duplicates"] == 0
    assert stats["duplicates"] == 1 and stats["completed"] == 4
