"""Token estimates made before a call, for rate-limit reservations and mock usage.

No tokenizer is bundled: about four characters per token for English text and code, plus the
chat format's per-message overhead. Reservations are corrected by the provider's real usage.
"""

from __future__ import annotations

from typing import Any

import orjson

CHARS_PER_TOKEN = 4
PER_MESSAGE_OVERHEAD = 4
PER_REQUEST_OVERHEAD = 3
IMAGE_TOKENS = 85


def estimate_text_tokens(text: str) -> int:
    """About four ASCII characters per token; other scripts (CJK...) about one per character.

    Overestimating is the safe side for rate-limit reservations.
    """
    ascii_chars = sum(1 for ch in text if ch < "\x80") if not text.isascii() else len(text)
    other_chars = len(text) - ascii_chars
    return (ascii_chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN + other_chars


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a chat-completions body: messages, tools and response schema."""
    total = PER_REQUEST_OVERHEAD
    for message in body.get("messages") or ():
        total += PER_MESSAGE_OVERHEAD
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    if isinstance(part.get("text"), str):
                        total += estimate_text_tokens(part["text"])
                    elif part.get("type") in ("image_url", "input_image"):
                        total += IMAGE_TOKENS
        for key in ("tool_calls", "name", "function_call"):
            if message.get(key):
                total += estimate_text_tokens(_as_text(message[key]))
    for key in ("tools", "functions", "response_format"):
        if body.get(key):
            total += estimate_text_tokens(_as_text(body[key]))
    return total


def _as_text(value: Any) -> str:
    """JSON text of structured fields (what the provider tokenizes), strings as they are."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def requested_completion_tokens(body: dict[str, Any], default: int) -> int:
    """The most completion tokens the request asks for, or ``default`` when it sets none."""
    choices = body.get("n")
    choices = choices if isinstance(choices, int) and not isinstance(choices, bool) and choices > 0 else 1
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value * choices
    return default * choices
