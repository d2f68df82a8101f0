"""Durations like 30s, 10m, 24h, 7d."""

from __future__ import annotations

import pytest

from dispatcher.durations import parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30s", 30.0),
        ("10m", 600.0),
        ("24h", 86400.0),
        ("7d", 604800.0),
        ("1.5h", 5400.0),
        ("45", 45.0),
        ("0", 0.0),
        (" 2 m ", 120.0),
        ("0.5s", 0.5),
    ],
)
def test_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_returns_float():
    assert isinstance(parse_duration("3m"), float)


@pytest.mark.parametrize("text", ["", "abc", "10w", "-5s", "1h30m", "m", "1e3s", "5 minutes"])
def test_unreadable(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert "not a duration" in str(info.value)
