"""Embeddings as the built-in mock answers them: deterministic unit vectors, OpenAI's shape.

A vector depends only on its input and ``dimensions`` (default 1536, as text-embedding-3-small),
so reruns and tests see the same numbers; ``encoding_format: base64`` gives little-endian
float32 bytes as OpenAI does. Usage counts input tokens only.
"""

from __future__ import annotations

import base64
import hashlib
import math
import sys
from array import array
from typing import Any

import orjson

from dispatcher.intake.embeddings import embeddings_problem, estimate_input_tokens

DEFAULT_DIMENSIONS = 1536


class NotAnEmbeddingsRequest(ValueError):
    """The body is not one OpenAI's embeddings API would take."""


def mock_embeddings(body: dict[str, Any], model: str) -> tuple[bytes, int]:
    """The ``{"object": "list", "data": [...], "usage": ...}`` body and its prompt tokens."""
    problem = embeddings_problem(body)
    if problem is not None:
        raise NotAnEmbeddingsRequest(problem[0])
    value = body["input"]
    single = isinstance(value, str) or all(isinstance(i, int) for i in value)
    inputs = [value] if single else value
    dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": index, "embedding": _encoded(_vector(item, dimensions), as_base64)}
        for index, item in enumerate(inputs)
    ]
    tokens = estimate_input_tokens(body)
    answer = {"object": "list", "data": data, "model": model,
              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return orjson.dumps(answer), tokens


def _vector(item: str | list[int], dimensions: int) -> array:
    """A unit vector seeded by the input."""
    seed = item.encode() if isinstance(item, str) else orjson.dumps(item)
    words = array("I", hashlib.shake_256(seed).digest(4 * dimensions))
    values = [w / 2147483647.5 - 1.0 for w in words]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values])


def _encoded(vector: array, as_base64: bool) -> Any:
    if not as_base64:
        return vector.tolist()
    if sys.byteorder == "big":
        vector.byteswap()
    return base64.b64encode(vector.tobytes()).decode()
