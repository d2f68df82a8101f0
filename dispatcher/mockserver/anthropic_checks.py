"""The checks Anthropic's Messages API makes on a request body, with its wording.

``request_problem(body)`` names the first problem ("max_tokens: Field required",
"messages.1.content.0.foo: Extra inputs are not permitted", ...) or returns None. Fields are
those of the API reference and the official SDK's ``MessageCreateParams``; unknown fields are
refused as the API refuses them. Two checks are stricter than today's API, on purpose, so an
adapter that relies on them is caught: roles must alternate (the API now merges consecutive
turns of one role) and the first message must be the user's; ``stream: true`` is refused
because the mock does not stream.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

_TOP_LEVEL = {
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
    "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
    "container", "mcp_servers", "context_management", "output_config", "output_format",
    "inference_geo", "speed", "cache_control", "diagnostics",
}
_BLOCK_FIELDS = {
    "text": ({"text"}, {"cache_control", "citations"}),
    "image": ({"source"}, {"cache_control"}),
    "document": ({"source"}, {"cache_control", "citations", "context", "title"}),
    "search_result": ({"source", "title", "content"}, {"cache_control", "citations"}),
    "tool_use": ({"id", "name", "input"}, {"cache_control"}),
    "tool_result": ({"tool_use_id"}, {"content", "is_error", "cache_control"}),
    "thinking": ({"thinking", "signature"}, set()),
    "redacted_thinking": ({"data"}, set()),
}
_USER_BLOCKS = ("text", "image", "document", "search_result", "tool_result")
_ASSISTANT_BLOCKS = ("text", "tool_use", "thinking", "redacted_thinking")
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_SERVER_TOOL_TYPE = re.compile(r"^[a-z_]+_\d{8}$")  # web_search_20250305, bash_20250124 ...
_CUSTOM_TOOL_FIELDS = {"name", "description", "input_schema", "cache_control", "type", "strict",
                       "input_examples", "defer_loading", "allowed_callers", "eager_input_streaming"}


class Problem(Exception):
    """A request Anthropic would refuse with 400 ``invalid_request_error``."""


def request_problem(body: Any) -> str | None:
    """The first thing Anthropic would refuse in this body, in its words; None if it is fine."""
    try:
        _check(body)
    except Problem as problem:
        return str(problem)
    return None


def _check(body: Any) -> None:
    if not isinstance(body, dict):
        raise Problem("invalid request: the body must be a JSON object")
    for key in body:
        if key not in _TOP_LEVEL:
            raise Problem(f"{key}: Extra inputs are not permitted")
    for key in ("model", "messages", "max_tokens"):
        if key not in body:
            raise Problem(f"{key}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise Problem("model: Input should be a valid string")
    _integer(body["max_tokens"], "max_tokens", minimum=1)
    if body.get("stream"):
        raise Problem("stream: the mock provider does not stream; send stream: false or leave it out")
    _system(body.get("system"))
    _messages(body["messages"])
    _sampling(body)
    if "metadata" in body:
        metadata = body["metadata"]
        if not isinstance(metadata, dict):
            raise Problem("metadata: Input should be a valid dictionary")
        for key, value in metadata.items():
            if key != "user_id":
                raise Problem(f"metadata.{key}: Extra inputs are not permitted")
            if value is not None and not isinstance(value, str):
                raise Problem("metadata.user_id: Input should be a valid string")
    names = _tools(body.get("tools"))
    _tool_choice(body.get("tool_choice"), names)


def _tag_mismatch(where: str, tag: Any, expected: str) -> str:
    return f"{where}: Input tag '{tag}' found using 'type' does not match any of the expected tags: {expected}"


def _integer(value: Any, where: str, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Problem(f"{where}: Input should be a valid integer")
    if value < minimum:
        raise Problem(f"{where}: Input should be greater than or equal to {minimum}")


def _number(value: Any, where: str, low: float, high: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise Problem(f"{where}: Input should be a valid number")
    if not low <= value <= high:
        raise Problem(f"{where}: Input should be between {low:g} and {high:g}")


def _sampling(body: dict[str, Any]) -> None:
    if "temperature" in body:
        _number(body["temperature"], "temperature", 0.0, 1.0)
    if "top_p" in body:
        _number(body["top_p"], "top_p", 0.0, 1.0)
    if "top_k" in body:
        _integer(body["top_k"], "top_k", minimum=0)
    if "stop_sequences" in body:
        stops = body["stop_sequences"]
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise Problem("stop_sequences: Input should be a valid list of strings")
        if any(not s.strip() for s in stops):
            raise Problem("stop_sequences: each stop sequence must contain non-whitespace")
    if "thinking" in body:
        thinking = body["thinking"]
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
            raise Problem("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
        if thinking["type"] == "enabled":
            _integer(thinking.get("budget_tokens"), "thinking.enabled.budget_tokens", minimum=1024)
            if thinking["budget_tokens"] >= body["max_tokens"]:
                raise Problem("`max_tokens` must be greater than `thinking.budget_tokens`")
    if "service_tier" in body and body["service_tier"] not in ("auto", "standard_only"):
        raise Problem("service_tier: Input should be 'auto' or 'standard_only'")


def _system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise Problem("system: Input should be a valid string or a list of text blocks")
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise Problem(f"system.{index}.type: Input should be 'text'")
        _block(block, f"system.{index}")


def _messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise Problem("messages: Input should be a valid list")
    if not messages:
        raise Problem("messages: at least one message is required")
    previous: str | None = None
    pending_tool_uses: set[str] = set()
    last = len(messages) - 1
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise Problem(f"{where}: Input should be a valid dictionary")
        for key in message:
            if key not in ("role", "content"):
                raise Problem(f"{where}.{key}: Extra inputs are not permitted")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise Problem(f"{where}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise Problem(f"{where}.content: Field required")
        if index == 0 and role != "user":
            raise Problem('messages: first message must use the "user" role')
        if role == previous:
            raise Problem(
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
        previous = role
        blocks = _content(message["content"], role, where, final=index == last)
        results = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
        unexpected = sorted(results - pending_tool_uses)
        if unexpected:
            raise Problem(
                f"{where}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: {', '.join(unexpected)}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            )
        missing = sorted(pending_tool_uses - results)
        if missing:
            raise Problem(
                f"messages.{index - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in "
                "the next message."
            )
        pending_tool_uses = {b["id"] for b in blocks if b.get("type") == "tool_use"}


def _content(content: Any, role: str, where: str, final: bool) -> list[dict[str, Any]]:
    """The message's blocks, checked ([] for string content)."""
    if not isinstance(content, (str, list)):
        raise Problem(f"{where}.content: Input should be a valid string or list of content blocks")
    if not content and not (final and role == "assistant"):
        raise Problem(
            f"{where}: all messages must have non-empty content except for the optional final assistant message"
        )
    if isinstance(content, str):
        return []
    allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
    for index, block in enumerate(content):
        at = f"{where}.content.{index}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in allowed:
            expected = ", ".join(f"'{name}'" for name in allowed)
            raise Problem(_tag_mismatch(f"{at}.type", kind, expected))
        _block(block, at)
    return content


def _block(block: dict[str, Any], at: str) -> None:
    kind = block["type"]
    required, optional = _BLOCK_FIELDS[kind]
    for key in block:
        if key != "type" and key not in required and key not in optional:
            raise Problem(f"{at}.{key}: Extra inputs are not permitted")
    for key in sorted(required):
        if key not in block:
            raise Problem(f"{at}.{key}: Field required")
    if kind == "text":
        if not isinstance(block["text"], str):
            raise Problem(f"{at}.text: Input should be a valid string")
        if not block["text"]:
            raise Problem(f"{at.split('.')[0]}: text content blocks must be non-empty")
    elif kind == "image":
        _image_source(block["source"], f"{at}.source")
    elif kind == "tool_use":
        if not isinstance(block["id"], str) or not block["id"]:
            raise Problem(f"{at}.id: Input should be a valid string")
        if not isinstance(block["name"], str) or not _TOOL_NAME.match(block["name"]):
            raise Problem(f"{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if not isinstance(block["input"], dict):
            raise Problem(f"{at}.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        _tool_result(block, at)
    if "cache_control" in block and block["cache_control"] is not None:
        _cache_control(block["cache_control"], f"{at}.cache_control")


def _image_source(source: Any, at: str) -> None:
    if not isinstance(source, dict):
        raise Problem(f"{at}: Input should be a valid dictionary")
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") not in _IMAGE_TYPES:
            expected = ", ".join(f"'{t}'" for t in _IMAGE_TYPES)
            raise Problem(f"{at}.base64.media_type: Input should be {expected}")
        data = source.get("data")
        if not isinstance(data, str) or not data:
            raise Problem(f"{at}.base64.data: Field required")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise Problem(f"{at}.base64.data: The image data is not valid base64") from None
    elif kind == "url":
        if not isinstance(source.get("url"), str) or not source["url"]:
            raise Problem(f"{at}.url.url: Field required")
    elif kind == "file":
        if not isinstance(source.get("file_id"), str):
            raise Problem(f"{at}.file.file_id: Field required")
    else:
        raise Problem(_tag_mismatch(at, kind, "'base64', 'url', 'file'"))


def _tool_result(block: dict[str, Any], at: str) -> None:
    if not isinstance(block["tool_use_id"], str) or not block["tool_use_id"]:
        raise Problem(f"{at}.tool_use_id: Input should be a valid string")
    if "is_error" in block and not isinstance(block["is_error"], bool):
        raise Problem(f"{at}.is_error: Input should be a valid boolean")
    content = block.get("content")
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise Problem(f"{at}.content: Input should be a valid string or list of content blocks")
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", "image", "document", "search_result"):
            expected = "'text', 'image', 'document', 'search_result'"
            raise Problem(_tag_mismatch(f"{at}.content.{index}.type", kind, expected))
        _block(part, f"{at}.content.{index}")


def _cache_control(value: Any, at: str) -> None:
    if not isinstance(value, dict) or value.get("type") != "ephemeral":
        raise Problem(f"{at}.type: Input should be 'ephemeral'")
    if value.get("ttl", "5m") not in ("5m", "1h"):
        raise Problem(f"{at}.ttl: Input should be '5m' or '1h'")


def _tools(tools: Any) -> set[str]:
    """The tool names (checked: unique, well-formed)."""
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise Problem("tools: Input should be a valid list")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        at = f"tools.{index}"
        if not isinstance(tool, dict):
            raise Problem(f"{at}: Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise Problem(f"{at}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        kind = tool.get("type")
        if kind is not None and kind != "custom":
            if not isinstance(kind, str) or not _SERVER_TOOL_TYPE.match(kind):
                raise Problem(_tag_mismatch(at, kind, "'custom' or a server tool type"))
        else:
            for key in tool:
                if key not in _CUSTOM_TOOL_FIELDS:
                    raise Problem(f"{at}.custom.{key}: Extra inputs are not permitted")
            schema = tool.get("input_schema")
            if schema is None:
                raise Problem(f"{at}.custom.input_schema: Field required")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise Problem(f"{at}.custom.input_schema.type: Input should be 'object'")
            if "description" in tool and not isinstance(tool["description"], str):
                raise Problem(f"{at}.custom.description: Input should be a valid string")
            if tool.get("cache_control") is not None:
                _cache_control(tool["cache_control"], f"{at}.custom.cache_control")
        if name in names:
            raise Problem("tools: Tool names must be unique.")
        names.add(name)
    return names


def _tool_choice(choice: Any, names: set[str]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise Problem("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    kind = choice["type"]
    allowed = {"type", "disable_parallel_tool_use"} | ({"name"} if kind == "tool" else set())
    if kind == "none":
        allowed = {"type"}
    for key in choice:
        if key not in allowed:
            raise Problem(f"tool_choice.{kind}.{key}: Extra inputs are not permitted")
    if "disable_parallel_tool_use" in choice and not isinstance(choice["disable_parallel_tool_use"], bool):
        raise Problem(f"tool_choice.{kind}.disable_parallel_tool_use: Input should be a valid boolean")
    if kind in ("any", "tool") and not names:
        raise Problem(f"tool_choice: tool_choice.type '{kind}' requires tools to be provided")
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise Problem("tool_choice.tool.name: Field required")
        if choice["name"] not in names:
            raise Problem(f"tool_choice: tool '{choice['name']}' was not found in tools")
