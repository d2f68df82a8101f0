"""Durations written like 30s, 10m, 24h or 7d."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; a bare number is seconds. ValueError when unreadable."""
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a duration like 30s, 10m, 24h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]
