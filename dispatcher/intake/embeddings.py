"""The body of an embeddings line (``url: /v1/embeddings``): what OpenAI's API accepts.

``input`` is a non-empty string, a list of strings, a list of token ids, or a list of token-id
lists (OpenAI's ``CreateEmbeddingRequest``); ``dimensions`` and ``encoding_format`` are passed
through after a shape check. Embeddings bill input tokens only.
"""

from __future__ import annotations

from typing import Any

from dispatcher.tokens import PER_REQUEST_OVERHEAD, estimate_text_tokens

#: OpenAI's limit on inputs in one embeddings request
MAX_INPUTS = 2048
ENCODING_FORMATS = ("float", "base64")


def embeddings_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    """(message, param) saying why OpenAI would refuse this embeddings body, or None."""
    if "messages" in body:
        return ("an embeddings request has 'input', not 'messages'; chat requests use url "
                "/v1/chat/completions", "body.messages")
    items = _inputs(body.get("input"))
    if items is None:
        return ("body.input must be a non-empty string, or a non-empty list of strings or of "
                "token ids", "body.input")
    if len(items) > MAX_INPUTS:
        return f"body.input has {len(items)} items; at most {MAX_INPUTS} are allowed", "body.input"
    for index, item in enumerate(items):
        if not (isinstance(item, str) and item) and not _token_ids(item):
            return (f"body.input[{index}] must be a non-empty string or a non-empty list of token ids",
                    f"body.input[{index}]")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool)
                                   or dimensions <= 0):
        return "body.dimensions must be a positive integer", "body.dimensions"
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ENCODING_FORMATS:
        return (f"body.encoding_format must be one of {', '.join(ENCODING_FORMATS)}",
                "body.encoding_format")
    return None


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """About what the provider will bill: text at the chat estimate's rate, token ids as given."""
    items = _inputs(body.get("input")) or []
    return PER_REQUEST_OVERHEAD + sum(
        estimate_text_tokens(item) if isinstance(item, str) else len(item) for item in items
    )


def _inputs(value: Any) -> list | None:
    """The inputs of ``input`` as a list (one string or one token list is one input)."""
    if isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list) or not value:
        return None
    return [value] if _token_ids(value) else value


def _token_ids(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(i, int) and not isinstance(i, bool) for i in value))
