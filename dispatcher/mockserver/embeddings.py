"""Embeddings as the mock answers them: deterministic unit vectors in OpenAI's shape.

Equal inputs give equal vectors (seeded by a hash of the text or token ids), so a test can
check that results come back in input order. ``dimensions`` is honoured (default 1536, as
text-embedding-3-small and ada-002); ``encoding_format: base64`` returns little-endian float32
bytes, as OpenAI does (the openai SDK asks for base64 by default and decodes it).
Directives (``[[mock:status=500]]`` ...) in a text input script failures as on chat.
"""

from __future__ import annotations

import base64
import hashlib
import math
import sys
from array import array
from dataclasses import dataclass
from typing import Any

import orjson

from dispatcher.providers.mock.replies import MockReply, directives, mock_reply
from dispatcher.tokens import estimate_text_tokens

DEFAULT_DIMENSIONS = 1536
MAX_DIMENSIONS = 3072
MAX_INPUTS = 2048


@dataclass(slots=True)
class EmbeddingsRequest:
    """A checked embeddings body: its inputs (texts or token ids) and what they cost."""

    inputs: list[str | list[int]]
    dimensions: int
    base64: bool
    tokens: int  # our estimate, before any prompt_token_scale
    fingerprint: str
    scripted: list[str]  # the text inputs that carry directives
    found: dict[str, str]  # their directives

    @classmethod
    def read(cls, body: dict[str, Any]) -> "EmbeddingsRequest":
        """Raises ValueError with OpenAI's wording for what it refuses."""
        inputs = _inputs(body.get("input"))
        dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= MAX_DIMENSIONS:
            raise ValueError(f"Invalid value for 'dimensions': {dimensions!r} (1 to {MAX_DIMENSIONS}).")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise ValueError(
                f"Invalid value for 'encoding_format': {encoding!r}. Supported values are: 'float' and 'base64'."
            )
        tokens = sum(estimate_text_tokens(item) if isinstance(item, str) else len(item) for item in inputs)
        texts = [item for item in inputs if isinstance(item, str) and "[[mock:" in item]
        found = directives({"messages": [{"content": text} for text in texts]}) if texts else {}
        raw = orjson.dumps(body.get("input"))
        fingerprint = hashlib.sha1(raw).hexdigest()[:16]
        return cls(inputs, dimensions, encoding == "base64", tokens, fingerprint, texts, found)

    @property
    def fail_first(self) -> int:
        return int(self.found["fail_first"] or 1) if "fail_first" in self.found else 0

    def scripted_reply(self, model: str) -> MockReply | None:
        """The directives' answer, as on chat (None without directives); a reply with usage
        means "answer normally" (only its ``sleep_s`` counts)."""
        if not self.found:
            return None
        return mock_reply({"messages": [{"role": "user", "content": text} for text in self.scripted]}, model=model)


def _inputs(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and _token_ids(value):
        items = [value]  # one input given as token ids
    elif isinstance(value, list) and value:
        items = value
    else:
        raise ValueError("'input' must be a non-empty string or array of strings or token arrays.")
    if len(items) > MAX_INPUTS:
        raise ValueError(f"'input' has {len(items)} items; at most {MAX_INPUTS} are allowed.")
    for index, item in enumerate(items):
        if isinstance(item, str):
            if not item:
                raise ValueError(f"'$.input[{index}]' is invalid: an empty string cannot be embedded.")
        elif not (isinstance(item, list) and item and _token_ids(item)):
            raise ValueError(f"'$.input[{index}]' is invalid: expected a string or an array of token ids.")
    return items


def _token_ids(items: list[Any]) -> bool:
    return all(isinstance(i, int) and not isinstance(i, bool) for i in items)


def embedding_vector(item: str | list[int], dimensions: int) -> array:
    """A unit vector that depends only on the input and the dimension count."""
    seed = item.encode() if isinstance(item, str) else orjson.dumps(item)
    raw = hashlib.shake_256(seed).digest(4 * dimensions)
    words = array("I", raw)
    values = array("f", [(w / 2147483647.5) - 1.0 for w in words])
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values])


def embeddings_answer(wanted: EmbeddingsRequest, model: str, prompt_token_scale: float) -> tuple[bytes, dict[str, int]]:
    """The ``{"object": "list", "data": [...]}`` body and its usage."""
    data = []
    for index, item in enumerate(wanted.inputs):
        vector = embedding_vector(item, wanted.dimensions)
        if wanted.base64:
            if sys.byteorder == "big":
                vector.byteswap()
            encoded: Any = base64.b64encode(vector.tobytes()).decode()
        else:
            encoded = vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = max(1, round(wanted.tokens * prompt_token_scale))
    usage = {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
    body = {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return orjson.dumps(body), usage
