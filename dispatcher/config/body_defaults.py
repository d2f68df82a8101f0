"""Chat parameters a deployment sets as request defaults: their types and their size.

They are copied into the body of every request of the deployment, so a bad one fails every
call (or, past a JSON encoder's recursion limit, the worker itself). Checked once when the
config is loaded: each known parameter has the JSON type OpenAI's API gives it, and the whole
set is plain JSON (string keys, finite numbers) of bounded size and depth.
"""

from __future__ import annotations

import math
from typing import Any

# JSON types, named as the error messages say them.
NUMBER = "a number"
INTEGER = "an integer"
BOOLEAN = "true or false"
STRING = "a string"
OBJECT = "a mapping"
ARRAY = "a list"

# OpenAI chat-completion parameters a deployment may set as defaults for its requests.
PARAMETER_TYPES: dict[str, tuple[str, ...]] = {
    "temperature": (NUMBER,), "top_p": (NUMBER,), "presence_penalty": (NUMBER,),
    "frequency_penalty": (NUMBER,),
    "n": (INTEGER,), "max_tokens": (INTEGER,), "max_completion_tokens": (INTEGER,),
    "seed": (INTEGER,), "top_logprobs": (INTEGER,),
    "logprobs": (BOOLEAN,), "store": (BOOLEAN,), "parallel_tool_calls": (BOOLEAN,),
    "user": (STRING,), "reasoning_effort": (STRING,), "service_tier": (STRING,),
    "verbosity": (STRING,),
    "stop": (STRING, ARRAY),
    "tool_choice": (STRING, OBJECT),
    "logit_bias": (OBJECT,), "response_format": (OBJECT,), "metadata": (OBJECT,),
    "prediction": (OBJECT,),
    "tools": (ARRAY,), "modalities": (ARRAY,),
}
BODY_PARAMETERS = frozenset(PARAMETER_TYPES)

# Tool definitions are the largest legitimate defaults: dozens of tools with schemas fit.
MAX_DEFAULTS_VALUES = 20_000
MAX_DEFAULTS_DEPTH = 32


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, dict):
        return OBJECT
    if isinstance(value, list):
        return ARRAY
    return type(value).__name__


def _accepts(allowed: tuple[str, ...], actual: str) -> bool:
    return actual in allowed or (actual == INTEGER and NUMBER in allowed)


class _SizeCheck:
    """Walks a value like a JSON encoder would, refusing what one cannot (or should not) write."""

    def __init__(self) -> None:
        self.values = 0

    def check(self, value: Any, depth: int = 0) -> str | None:
        self.values += 1
        if self.values > MAX_DEFAULTS_VALUES:
            return f"holds more than {MAX_DEFAULTS_VALUES:,} values"
        if depth > MAX_DEFAULTS_DEPTH:
            return f"is nested deeper than {MAX_DEFAULTS_DEPTH} levels"
        if isinstance(value, float) and not math.isfinite(value):
            return "holds a number that JSON cannot carry (nan or infinity)"
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return f"has a key that is not a string ({key!r})"
                problem = self.check(item, depth + 1)
                if problem:
                    return problem
        elif isinstance(value, list):
            for item in value:
                problem = self.check(item, depth + 1)
                if problem:
                    return problem
        elif value is not None and not isinstance(value, (str, int, float)):
            return f"holds a {type(value).__name__}, which is not JSON (quote it to make it text)"
        return None


def body_default_problems(extra: dict[str, Any]) -> list[str]:
    """One message per bad default among ``extra`` (litellm_params keys we do not know)."""
    problems = []
    size = _SizeCheck()
    for key, value in extra.items():
        if key in PARAMETER_TYPES:
            allowed = PARAMETER_TYPES[key]
            actual = _json_type(value)
            if value is not None and not _accepts(allowed, actual):
                problems.append(f"{key} must be {' or '.join(allowed)}, not {actual} ({_short(value)})")
                continue
        elif key == "extra_body":
            if not isinstance(value, dict):
                problems.append(f"extra_body must be a mapping of body fields, not {_json_type(value)}")
                continue
        else:
            continue  # not sent to the provider
        problem = size.check(value)
        if problem:
            problems.append(f"{key} {problem}; request defaults must be plain, small JSON")
            if size.values > MAX_DEFAULTS_VALUES:
                break
    return problems


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:40] + "..."
