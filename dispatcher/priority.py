"""Priorities: 0 (most urgent) to 9, with names accepted wherever a number is.

What a priority does (claim order, urgent moves) is decided in dispatcher/scheduling/.
"""

from __future__ import annotations

PRIORITY_NAMES = {"urgent": 0, "high": 2, "normal": 5, "low": 7, "bulk": 9}
MIN_PRIORITY, MAX_PRIORITY = 0, 9
# Calls at these priorities (urgent and high) may take the room kept for urgent calls when a
# provider's rate-limit headers say it has some (rate_limits.urgent_reserve).
URGENT_PRIORITY_MAX = 2


def parse_priority(value: object) -> int:
    """An int 0..9 from a number or a name; ValueError says what is accepted."""
    if isinstance(value, bool):
        raise ValueError(_HELP)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in PRIORITY_NAMES:
            return PRIORITY_NAMES[text]
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"'{value}' is not a priority; {_HELP}") from None
    else:
        raise ValueError(f"{value!r} is not a priority; {_HELP}")
    if not MIN_PRIORITY <= number <= MAX_PRIORITY:
        raise ValueError(f"priority {number} is out of range; {_HELP}")
    return number


_HELP = "use 0 (most urgent) to 9, or " + ", ".join(
    f"{name}={number}" for name, number in PRIORITY_NAMES.items()
)
