"""OpenAI's cursor pages: ``{"object": "list", "data", "first_id", "last_id", "has_more"}``.

The SDK asks for the next page with ``after`` = the last item's id while ``has_more`` is true.
Routes fetch one item more than asked: its presence is ``has_more``.
"""

from __future__ import annotations

from typing import Any, Sequence


def cursor_page(items: Sequence[dict[str, Any]], limit: int) -> dict[str, Any]:
    """A page of at most ``limit`` items out of ``limit + 1`` fetched."""
    shown = list(items[:limit])
    return {
        "object": "list",
        "data": shown,
        "first_id": shown[0]["id"] if shown else None,
        "last_id": shown[-1]["id"] if shown else None,
        "has_more": len(items) > limit,
    }
