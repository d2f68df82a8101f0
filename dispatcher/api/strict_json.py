"""JSON bodies hold finite numbers only.

Python's ``json`` module, which reads request bodies, accepts ``NaN``, ``Infinity`` and
``-Infinity`` (not JSON at all) and reads a number past a double's range (``1e400``) as
infinity. Such a value would be stored or sent on: an infinite ``not_before`` makes a batch
whose Batch object cannot be written, a NaN temperature a provider request that is not JSON. So
a body holding one is refused as invalid JSON (400) before any route sees it, as OpenAI does.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request

from dispatcher.api.errors import ApiError

METHODS_WITH_BODIES = frozenset({"POST", "PUT", "PATCH"})
MAX_PARAM = 200  # a value nested a thousand lists deep is named by its first levels


async def finite_json_numbers(request: Request) -> None:
    """The app-wide dependency: 400 for a JSON body with a number that is not finite."""
    if request.method not in METHODS_WITH_BODIES or not _json_declared(request.headers.get("content-type")):
        return
    if not await request.body():
        return
    try:
        body = await request.json()  # a route with a body has parsed it already: this is that value
    except (ValueError, RecursionError):
        return  # not JSON the parser can read: the route's own body handling answers that
    if _all_finite(body):
        return
    param = ".".join(str(part) for part in _first_non_finite(body))[:MAX_PARAM] or None
    raise ApiError(
        400, f"the body is not valid JSON: {param or 'the body'} is not a finite number (NaN, Infinity "
        "and numbers beyond a double's range are not JSON numbers)", param=param, code="invalid_json",
    )


def _json_declared(content_type: str | None) -> bool:
    """As FastAPI decides to read a body as JSON: no content type, or application/json or +json."""
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json"))


def _all_finite(value: Any) -> bool:
    """The fast check, on every body: no paths kept."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def _first_non_finite(value: Any) -> tuple:
    """Where a non-finite number is (keys and list indexes), for the error's param. Iterative,
    like ``_all_finite``: a body may nest as deep as the JSON parser allows."""
    pending: list[tuple[Any, tuple]] = [(value, ())]
    while pending:
        item, path = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return path
        children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        pending.extend((child, (*path, key)) for key, child in reversed(list(children)))
    return ()
