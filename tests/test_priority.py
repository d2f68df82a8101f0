"""Priority parsing: numbers 0..9 and names."""

from __future__ import annotations

import pytest

from dispatcher.priority import PRIORITY_NAMES, parse_priority


@pytest.mark.parametrize("value, expected", [(0, 0), (5, 5), (9, 9), ("0", 0), (" 7 ", 7), ("09", 9)])
def test_numbers(value, expected):
    assert parse_priority(value) == expected


@pytest.mark.parametrize("name, expected", [("urgent", 0), ("high", 2), ("normal", 5), ("low", 7), ("bulk", 9)])
def test_names(name, expected):
    assert parse_priority(name) == expected
    assert parse_priority(name.upper()) == expected
    assert parse_priority(f"  {name} ") == expected


def test_names_are_in_range():
    assert all(0 <= number <= 9 for number in PRIORITY_NAMES.values())


@pytest.mark.parametrize("value", [10, -1, "10", "-1", 100])
def test_out_of_range(value):
    with pytest.raises(ValueError, match="out of range"):
        parse_priority(value)


@pytest.mark.parametrize("value", ["soon", "", "2.0", 2.0, None, [1], True, False])
def test_not_a_priority(value):
    with pytest.raises(ValueError) as info:
        parse_priority(value)
    assert "urgent=0" in str(info.value)  # the message says what is accepted
