"""What a line may hold that the store cannot: JSON nested too deep, and NUL characters.

Both are refused at validation, with the line and the field, because both would otherwise
fail later, after earlier chunks of the batch were stored and had started running:

* orjson writes at most 254 levels of nesting (and parses up to 1,024), and request bodies
  are written again when stored and on their way to a provider;
* PostgreSQL ``text`` (and ``jsonb``) cannot hold the NUL character, which JSON can carry as
  ``\\u0000``; a NUL anywhere in a line could also reach a stored error message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

# Real requests nest a few levels (a JSON schema in response_format perhaps 30); this leaves
# ample room for them and for anything that wraps a body, well under what orjson can write.
MAX_DEPTH = 128
# Levels of containers orjson writes; one more raises "Recursion limit reached" (a test pins it).
ORJSON_MAX_DEPTH = 254
NUL = "\x00"
_NUL_ESCAPE = b"\\u0000"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SHOWN_SEGMENTS = 4


@dataclass(frozen=True, slots=True)
class Unstorable:
    """Why a parsed line cannot be stored: ``kind`` is "depth" or "nul"; ``path`` names the field."""

    kind: str
    path: str
    in_key: bool = False

    def describe(self) -> str:
        if self.kind == "depth":
            return (f"JSON nested deeper than {MAX_DEPTH} levels (at {self.path}); "
                    "flatten the request")
        where = f"a key of {self.path or 'the line'}" if self.in_key else self.path
        return (f"{where} contains a NUL character (\\u0000), which the database cannot store; "
                "remove it")


def needs_check(raw: bytes | str | dict, data: Any) -> bool:
    """A cheap screen: False when ``find_unstorable(data)`` surely finds nothing, so common
    lines, and lines with many containers but few levels (a structured-output schema), are
    never walked in Python.

    A NUL can only come from a ``\\u0000`` escape (a raw NUL byte is not valid JSON). For the
    depth, orjson itself is asked whether it could write the line with
    ``ORJSON_MAX_DEPTH - MAX_DEPTH`` levels around it.
    """
    if isinstance(raw, dict):
        try:
            raw = orjson.dumps(raw)
        except orjson.JSONEncodeError:
            return True  # too deep to write, or not JSON: the walk (or the body check) says where
    elif isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if _NUL_ESCAPE in raw:
        return True
    if raw.count(b"[") + raw.count(b"{") < MAX_DEPTH:
        return False  # fewer containers than levels allowed: most lines end here
    probe = data
    for _ in range(ORJSON_MAX_DEPTH - MAX_DEPTH):
        probe = [probe]
    try:
        orjson.dumps(probe)
    except orjson.JSONEncodeError:
        return True
    return False


def find_unstorable(data: Any) -> Unstorable | None:
    """The first field of a parsed line nested too deep or holding a NUL, else None.

    Iterative, so a nesting deep enough to break the store cannot break this check either.
    """
    # Each entry: (value, depth, link); a link is (parent link, key or index), walked back to
    # build a path only when something is found.
    stack: list[tuple[Any, int, tuple | None]] = [(data, 1, None)]
    while stack:
        value, depth, link = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                return Unstorable("nul", _path(link))
            continue
        if isinstance(value, dict):
            children = value.items()
        elif isinstance(value, (list, tuple)):
            children = enumerate(value)
        else:
            continue
        if depth > MAX_DEPTH:
            return Unstorable("depth", _path(link))
        for key, child in reversed(list(children)):  # reversed: popped in document order
            if isinstance(key, str) and NUL in key:
                return Unstorable("nul", _path(link), in_key=True)
            if isinstance(child, (str, dict, list, tuple)):
                stack.append((child, depth + 1, (link, key)))
    return None


def _path(link: tuple | None) -> str:
    """``body.messages[0].content``; long paths keep their first segments and end in ``...``."""
    segments: list[Any] = []
    while link is not None:
        link, key = link
        segments.append(key)
    segments.reverse()
    shown = segments[:_SHOWN_SEGMENTS]
    text = ""
    for key in shown:
        if isinstance(key, int):
            text += f"[{key}]"
        elif isinstance(key, str) and _IDENTIFIER.match(key):
            text += f".{key}" if text else key
        else:
            text += f"[{json.dumps(key) if isinstance(key, str) else repr(key)}]"
    return text + ("..." if len(segments) > len(shown) else "")
