"""An Anthropic Message as an OpenAI ``chat.completion``.

Text blocks become the content, ``tool_use`` blocks ``tool_calls`` (arguments as a JSON
string), except the response_format tool, whose input becomes the content. ``usage`` counts
every prompt token Anthropic billed: ``input_tokens`` excludes cache reads and cache writes,
so ``prompt_tokens`` adds them back, and both cache counts are kept (they are priced apart).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from dispatcher.providers.anthropic.request import JSON_TOOL_NAME

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class NotAMessage(ValueError):
    """The body is not an Anthropic Message."""


def chat_completion(message: Any, *, json_tool: bool, created: int | None = None) -> dict[str, Any]:
    """The ``chat.completion`` for ``message``; ``json_tool``: the request forced the
    response_format tool, whose input is the answer."""
    if (
        not isinstance(message, dict)
        or message.get("type") != "message"
        or not isinstance(message.get("content"), list)
    ):
        raise NotAMessage("not an Anthropic Message (type 'message' with a content list)")
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict] = []
    answered_by_json_tool = False
    for block in message["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if json_tool and block.get("name") == JSON_TOOL_NAME:
                texts = [arguments]
                answered_by_json_tool = True
                continue
            tool_calls.append({
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": arguments},
            })
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    if reasoning:
        reply["reasoning_content"] = "".join(reasoning)  # LiteLLM's name for thinking text
    finish_reason = FINISH_REASONS.get(message.get("stop_reason") or "end_turn", "stop")
    if answered_by_json_tool and finish_reason == "tool_calls":
        finish_reason = "stop"
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": message.get("model"),
        "choices": [{"index": 0, "message": reply, "finish_reason": finish_reason, "logprobs": None}],
        "usage": openai_usage(message.get("usage")),
    }


def openai_usage(usage: Any) -> dict[str, Any] | None:
    """Anthropic's usage in OpenAI's shape, cache counts kept (LiteLLM's field names)."""
    if not isinstance(usage, dict):
        return None
    fresh = _count(usage.get("input_tokens"))
    read = _count(usage.get("cache_read_input_tokens"))
    written = _count(usage.get("cache_creation_input_tokens"))
    completion = _count(usage.get("output_tokens"))
    prompt = fresh + read + written
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_creation_tokens": written},
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
