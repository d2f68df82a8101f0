"""Token estimates used for reservations and mock usage."""

from __future__ import annotations

import pytest

from dispatcher.tokens import (
    IMAGE_TOKENS,
    PER_MESSAGE_OVERHEAD,
    PER_REQUEST_OVERHEAD,
    estimate_prompt_tokens,
    estimate_text_tokens,
    requested_completion_tokens,
)


@pytest.mark.parametrize("text, tokens", [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)])
def test_ascii_text_about_four_chars_per_token(text, tokens):
    assert estimate_text_tokens(text) == tokens


def test_non_latin_text_one_token_per_character():
    assert estimate_text_tokens("你好世界") == 4
    assert estimate_text_tokens("ab你好") == 1 + 2


def test_empty_body_is_request_overhead():
    assert estimate_prompt_tokens({}) == PER_REQUEST_OVERHEAD
    assert estimate_prompt_tokens({"messages": None}) == PER_REQUEST_OVERHEAD


def test_messages_add_overhead_and_content():
    body = {"messages": [{"role": "system", "content": "abcd"}, {"role": "user", "content": "abcdefgh"}]}
    assert estimate_prompt_tokens(body) == PER_REQUEST_OVERHEAD + 2 * PER_MESSAGE_OVERHEAD + 1 + 2


def test_content_parts_text_and_images():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "abcdefgh"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    "ignored",
                ],
            }
        ]
    }
    assert estimate_prompt_tokens(body) == PER_REQUEST_OVERHEAD + PER_MESSAGE_OVERHEAD + 2 + IMAGE_TOKENS


def test_non_dict_message_counts_overhead_only():
    assert estimate_prompt_tokens({"messages": ["x"]}) == PER_REQUEST_OVERHEAD + PER_MESSAGE_OVERHEAD


def test_tools_and_response_format_count():
    base = {"messages": [{"role": "user", "content": "hi"}]}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    assert estimate_prompt_tokens({**base, "tools": tools}) > estimate_prompt_tokens(base)
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert estimate_prompt_tokens({**base, "response_format": schema}) > estimate_prompt_tokens(base)


def test_tool_calls_in_history_count():
    plain = {"messages": [{"role": "assistant", "content": None}]}
    with_calls = {
        "messages": [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            }
        ]
    }
    assert estimate_prompt_tokens(with_calls) > estimate_prompt_tokens(plain)


def test_requested_completion_tokens():
    assert requested_completion_tokens({}, 1024) == 1024
    assert requested_completion_tokens({"max_tokens": 50}, 1024) == 50
    assert requested_completion_tokens({"max_completion_tokens": 70, "max_tokens": 50}, 1024) == 70
    assert requested_completion_tokens({"max_tokens": 50, "n": 3}, 1024) == 150


@pytest.mark.parametrize("n", [0, -2, True, "3", None])
def test_bad_n_counts_as_one(n):
    assert requested_completion_tokens({"max_tokens": 10, "n": n}, 1) == 10


@pytest.mark.parametrize("value", [0, -5, True, 2.5, "100"])
def test_bad_max_tokens_falls_back_to_default(value):
    assert requested_completion_tokens({"max_tokens": value}, 33) == 33


def test_default_is_per_choice_too():
    assert requested_completion_tokens({"n": 4}, 100) == 400
