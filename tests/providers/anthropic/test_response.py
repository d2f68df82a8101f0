"""Anthropic Messages translated to OpenAI chat completions.

The Messages are shaped as Anthropic's documentation shows them, and checked with the official
SDK's ``Message`` type; the results are checked with the openai SDK's ``ChatCompletion``.
"""

from __future__ import annotations

import anthropic.types
import openai.types.chat
import orjson
import pytest

from dispatcher.providers.anthropic.request import JSON_TOOL_NAME
from dispatcher.providers.anthropic.response import NotAMessage, chat_completion
from dispatcher.providers.base import Usage


def _message(content, stop_reason="end_turn", **usage) -> dict:
    message = {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 2095, "output_tokens": 503, **usage},
    }
    anthropic.types.Message.model_validate(message)  # the shape Anthropic's SDK reads
    return message


def _completion(message: dict, json_tool: bool = False) -> dict:
    completion = chat_completion(message, json_tool=json_tool, created=1700000000)
    openai.types.chat.ChatCompletion.model_validate(completion)  # the shape OpenAI clients read
    return completion


def test_text_answer():
    completion = _completion(_message([{"type": "text", "text": "Hi! My name is Claude."}]))
    assert completion == {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude-sonnet-4-5-20250929",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": "Hi! My name is Claude."}}],
        "usage": {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598,
                  "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_tokens": 0},
                  "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
    }


def test_tool_use_becomes_tool_calls():
    message = _message([
        {"type": "text", "text": "I'll check the weather."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
         "input": {"location": "San Francisco, CA", "unit": "celsius"}},
    ], stop_reason="tool_use")
    choice = _completion(message)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll check the weather."
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9" and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"location": "San Francisco, CA", "unit": "celsius"}


def test_forced_json_tool_input_becomes_the_content():
    message = _message([{"type": "tool_use", "id": "toolu_1", "name": JSON_TOOL_NAME,
                         "input": {"name": "Ada", "born": 1815}}], stop_reason="tool_use")
    choice = _completion(message, json_tool=True)["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert orjson.loads(choice["message"]["content"]) == {"name": "Ada", "born": 1815}
    assert "tool_calls" not in choice["message"]


@pytest.mark.parametrize("stop_reason, finish_reason", [
    ("end_turn", "stop"),
    ("stop_sequence", "stop"),
    ("max_tokens", "length"),
    ("tool_use", "tool_calls"),
    ("refusal", "content_filter"),
    ("pause_turn", "stop"),
    ("model_context_window_exceeded", "length"),
])
def test_finish_reasons(stop_reason, finish_reason):
    completion = _completion(_message([{"type": "text", "text": "x"}], stop_reason=stop_reason))
    assert completion["choices"][0]["finish_reason"] == finish_reason


def test_refusal_with_no_text():
    choice = _completion(_message([], stop_reason="refusal"))["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] is None


def test_thinking_is_kept_as_reasoning_content():
    message = _message([
        {"type": "thinking", "thinking": "Let me add 2 and 2.", "signature": "EqQBCgIYAhIM"},
        {"type": "text", "text": "4"},
    ])
    reply = _completion(message)["choices"][0]["message"]
    assert reply["content"] == "4" and reply["reasoning_content"] == "Let me add 2 and 2."


def test_usage_counts_cache_reads_and_writes_in_the_prompt():
    message = _message([{"type": "text", "text": "ok"}],
                       cache_creation_input_tokens=248, cache_read_input_tokens=1800)
    usage = _completion(message)["usage"]
    assert usage["prompt_tokens"] == 2095 + 248 + 1800
    assert usage["completion_tokens"] == 503
    assert usage["total_tokens"] == 2095 + 248 + 1800 + 503
    assert usage["prompt_tokens_details"]["cached_tokens"] == 1800
    assert usage["cache_creation_input_tokens"] == 248
    assert Usage.from_openai(usage) == Usage(4143, 503, 4646, cached_tokens=1800, cache_creation_tokens=248)


@pytest.mark.parametrize("body", [
    {"type": "error", "error": {"type": "api_error", "message": "boom"}},
    {"choices": []},
    [1, 2],
])
def test_not_a_message(body):
    with pytest.raises(NotAMessage):
        chat_completion(body, json_tool=False)
