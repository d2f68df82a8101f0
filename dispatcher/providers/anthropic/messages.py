"""OpenAI chat messages as Anthropic's ``system`` and ``messages``.

System and developer messages become ``system``; assistant ``tool_calls`` become ``tool_use``
blocks and ``tool`` messages ``tool_result`` blocks in a user turn; images and PDFs given as
data URLs become base64 blocks. Consecutive turns of one role are merged, since Anthropic
alternates user and assistant turns. Anything that cannot be expressed raises
``UnsupportedRequest`` naming where it is.
"""

from __future__ import annotations

from typing import Any

import orjson

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


class UnsupportedRequest(ValueError):
    """An OpenAI chat body that Anthropic's Messages API cannot take; ``param`` names where."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param


def convert_messages(messages: Any) -> tuple[str | list[dict] | None, list[dict]]:
    """(system, messages) for the Messages API from OpenAI ``messages``."""
    if not isinstance(messages, list) or not messages:
        raise UnsupportedRequest("messages", "must be a non-empty list")
    system: list[dict] = []
    turns: list[dict] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise UnsupportedRequest(where, "must be an object with a 'role'")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), f"{where}.content"))
            continue
        if role == "user":
            turn = {"role": "user", "content": _user_content(message.get("content"), f"{where}.content")}
        elif role == "assistant":
            turn = {"role": "assistant", "content": _assistant_content(message, where)}
        elif role == "tool":
            turn = {"role": "user", "content": [_tool_result(message, where)]}
        else:
            raise UnsupportedRequest(
                f"{where}.role", f"role {role!r} cannot be sent to Anthropic "
                "(use system, developer, user, assistant or tool)"
            )
        _cache_control_on_last_block(turn, message)
        _append_merged(turns, turn)
    if not turns:
        raise UnsupportedRequest("messages", "Anthropic needs a user message besides the system messages")
    if turns[0]["role"] != "user":
        raise UnsupportedRequest(
            "messages", "the first message after the system messages must be the user's "
            "(Anthropic starts every conversation with a user turn)"
        )
    return _system_value(system), turns


def _system_value(blocks: list[dict]) -> str | list[dict] | None:
    """One string when the blocks are plain text (the common case), else the block list."""
    if not blocks:
        return None
    if all(len(block) == 2 for block in blocks):  # only type and text: no cache_control
        return "\n\n".join(block["text"] for block in blocks)
    return blocks


def _append_merged(turns: list[dict], turn: dict) -> None:
    if not turns or turns[-1]["role"] != turn["role"]:
        turns.append(turn)
        return
    last = turns[-1]
    last["content"] = _as_blocks(last["content"]) + _as_blocks(turn["content"])


def _as_blocks(content: str | list[dict]) -> list[dict]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _cache_control_on_last_block(turn: dict, message: dict) -> None:
    """LiteLLM's message-level ``cache_control`` marks the message's last block."""
    cache_control = message.get("cache_control")
    if cache_control is None:
        return
    turn["content"] = _as_blocks(turn["content"])
    turn["content"][-1] = {**turn["content"][-1], "cache_control": cache_control}


def _text_blocks(content: Any, where: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise UnsupportedRequest(where, "must be a string or a list of text parts")
    blocks = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise UnsupportedRequest(f"{where}[{index}]", "only text parts can be sent here")
        if part["text"]:
            blocks.append(_text_block(part))
    return blocks


def _text_block(part: dict) -> dict:
    block = {"type": "text", "text": part["text"]}
    if part.get("cache_control") is not None:
        block["cache_control"] = part["cache_control"]
    return block


def _user_content(content: Any, where: str) -> str | list[dict]:
    if isinstance(content, str):
        if not content:
            raise UnsupportedRequest(where, "is empty; Anthropic refuses empty messages")
        return content
    if not isinstance(content, list) or not content:
        raise UnsupportedRequest(where, "must be a non-empty string or list of content parts")
    return [_content_part(part, f"{where}[{index}]") for index, part in enumerate(content)]


def _content_part(part: Any, where: str) -> dict:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        if not part["text"]:
            raise UnsupportedRequest(where, "is an empty text part; Anthropic refuses empty text")
        return _text_block(part)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        block = _image_block(url, f"{where}.image_url")
    elif kind == "file":
        block = _document_block(part.get("file"), f"{where}.file")
    else:
        raise UnsupportedRequest(
            where, f"content part type {kind!r} cannot be sent to Anthropic (text, image_url "
            "and PDF files can)"
        )
    if part.get("cache_control") is not None:
        block["cache_control"] = part["cache_control"]
    return block


def _image_block(url: Any, where: str) -> dict:
    if not isinstance(url, str):
        raise UnsupportedRequest(where, "needs a url (a data: URL or an http(s) URL)")
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = _data_url(url, where)
    if media_type not in IMAGE_MEDIA_TYPES:
        raise UnsupportedRequest(
            where,
            f"image type {media_type!r} cannot be sent to Anthropic ({', '.join(IMAGE_MEDIA_TYPES)} can)",
        )
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document_block(file: Any, where: str) -> dict:
    data_url = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data_url, str):
        raise UnsupportedRequest(
            where, "only files given inline as file_data (a data: URL) can be sent to Anthropic"
        )
    media_type, data = _data_url(data_url, f"{where}.file_data")
    if media_type != "application/pdf":
        raise UnsupportedRequest(
            f"{where}.file_data", f"file type {media_type!r} cannot be sent to Anthropic (PDF can)"
        )
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _data_url(url: str, where: str) -> tuple[str, str]:
    """``data:<media type>;base64,<data>`` as (media type, data)."""
    header, comma, data = url.partition(",")
    if not url.startswith("data:") or not comma or not header.endswith(";base64") or not data:
        raise UnsupportedRequest(
            where, "must be an http(s) URL or a base64 data: URL (data:<type>;base64,...)"
        )
    return header[len("data:"):-len(";base64")].lower(), data


def _assistant_content(message: dict, where: str) -> str | list[dict]:
    content = message.get("content")
    if message.get("function_call") is not None:
        raise UnsupportedRequest(
            f"{where}.function_call", "legacy function_call cannot be sent to Anthropic; use tool_calls"
        )
    blocks: list[dict] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for index, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "refusal":
                part = {"type": "text", "text": part.get("refusal")}
            blocks.extend(_text_blocks([part], f"{where}.content[{index}]"))
    elif content is not None:
        raise UnsupportedRequest(f"{where}.content", "must be a string, a list of text parts or null")
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise UnsupportedRequest(f"{where}.tool_calls", "must be a list")
    blocks.extend(_tool_use(call, f"{where}.tool_calls[{index}]") for index, call in enumerate(tool_calls))
    if not blocks:
        raise UnsupportedRequest(
            where, "an assistant message needs content or tool_calls; Anthropic refuses empty turns"
        )
    if len(blocks) == 1 and blocks[0]["type"] == "text" and isinstance(content, str):
        return content
    return blocks


def _tool_use(call: Any, where: str) -> dict:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not call.get("id"):
        raise UnsupportedRequest(where, "needs an id and a function with a name")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise UnsupportedRequest(
            f"{where}.function.arguments", "is not JSON; Anthropic takes tool input as an object"
        ) from None
    if not isinstance(parsed, dict):
        raise UnsupportedRequest(f"{where}.function.arguments", "must be a JSON object for Anthropic")
    return {"type": "tool_use", "id": str(call["id"]), "name": function["name"], "input": parsed}


def _tool_result(message: dict, where: str) -> dict:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise UnsupportedRequest(f"{where}.tool_call_id", "a tool message needs the tool_call_id it answers")
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    if isinstance(content, str):
        if content:
            result["content"] = content
    elif isinstance(content, list):
        result["content"] = [
            _content_part(part, f"{where}.content[{index}]") for index, part in enumerate(content)
        ]
    elif content is not None:
        raise UnsupportedRequest(f"{where}.content", "must be a string or a list of content parts")
    return result
