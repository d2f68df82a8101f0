"""Points in time given by people: the one reader behind every option that takes a time.

A time is Unix seconds (``1795000000``), or ISO 8601 (``2026-11-25``, ``2026-11-25T02:00``,
``2026-11-25T02:00+01:00``, ``...Z``). A time without a zone means UTC, wherever the command
runs: a fleet spans time zones, and the same text must name the same instant for every
option and every machine.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

from dispatcher.durations import parse_duration

TIME_HELP = "ISO 8601 (2026-11-25T02:00; no zone means UTC) or Unix seconds"
TIME_OR_AGO_HELP = "ISO 8601 (2026-11-25T02:00; no zone means UTC), Unix seconds, or a duration ago (7d)"


def parse_time(value: float | int | str | datetime) -> float:
    """Unix seconds for ``value``; a naive date or time is read as UTC. ValueError says why."""
    if isinstance(value, datetime):
        return _as_utc(value).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _finite(float(value), value)
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return _finite(seconds, value)
    try:
        return _as_utc(datetime.fromisoformat(text)).timestamp()
    except ValueError:
        raise ValueError(f"{str(value)!r} is not a time: use {TIME_HELP}") from None


def _finite(seconds: float, value) -> float:
    """``inf`` and ``nan`` parse as floats but name no time (and would break SQL columns)."""
    if not math.isfinite(seconds):
        raise ValueError(f"{str(value)!r} is not a time: use {TIME_HELP}")
    return seconds


def parse_time_or_ago(value: float | int | str | datetime, now: float | None = None) -> float:
    """Like ``parse_time``, and a duration (``7d``, ``90m``) means that long before now.

    A bare number stays Unix seconds, never a number of seconds ago.
    """
    if isinstance(value, str) and not _is_number(value):
        try:
            return (time.time() if now is None else now) - parse_duration(value)
        except ValueError:
            pass
    try:
        return parse_time(value)
    except ValueError:
        raise ValueError(f"{str(value)!r} is not a time: use {TIME_OR_AGO_HELP}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
