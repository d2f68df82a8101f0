"""One reader for every time a person types: a time without a zone means UTC, on any machine."""

from __future__ import annotations

import time
from calendar import timegm
from datetime import datetime, timedelta, timezone

import pytest

from dispatcher.times import parse_time, parse_time_or_ago

NOV_25_0200_UTC = timegm((2026, 11, 25, 2, 0, 0))


@pytest.fixture
def far_time_zone(monkeypatch):
    """This process runs at UTC+9 (a POSIX TZ string: no zoneinfo files needed)."""
    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("text, expected", [
    ("2026-11-25T02:00", NOV_25_0200_UTC),
    ("2026-11-25 02:00:00", NOV_25_0200_UTC),
    ("2026-11-25", timegm((2026, 11, 25, 0, 0, 0))),
    ("2026-11-25T02:00Z", NOV_25_0200_UTC),
    ("2026-11-25T03:00+01:00", NOV_25_0200_UTC),
    (str(NOV_25_0200_UTC), NOV_25_0200_UTC),
    (f" {NOV_25_0200_UTC}.5 ", NOV_25_0200_UTC + 0.5),
    (NOV_25_0200_UTC, NOV_25_0200_UTC),
    (datetime(2026, 11, 25, 2, 0), NOV_25_0200_UTC),
    (datetime(2026, 11, 25, 11, 0, tzinfo=timezone(timedelta(hours=9))), NOV_25_0200_UTC),
])
def test_times_are_read_as_utc_whatever_the_local_time_zone(far_time_zone, text, expected):
    assert parse_time(text) == expected
    assert parse_time_or_ago(text) == expected


def test_a_duration_is_that_long_ago_but_a_bare_number_stays_unix_seconds():
    assert parse_time_or_ago("7d", now=1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert parse_time_or_ago("90m", now=1_000_000.0) == 1_000_000.0 - 5400
    assert parse_time_or_ago("1795000000", now=1_000_000.0) == 1_795_000_000.0


@pytest.mark.parametrize("reader, forms", [
    (parse_time, "ISO 8601 (2026-11-25T02:00; no zone means UTC) or Unix seconds"),
    (parse_time_or_ago, "or a duration ago (7d)"),
])
def test_an_unreadable_time_says_which_forms_are_accepted(reader, forms):
    with pytest.raises(ValueError) as info:
        reader("next tuesday")
    assert "'next tuesday' is not a time" in str(info.value)
    assert forms in str(info.value)


def test_a_duration_is_not_a_point_in_time_for_parse_time():
    with pytest.raises(ValueError):
        parse_time("10m")


@pytest.mark.parametrize("value", [float("inf"), float("nan"), "inf", "-inf", "nan", "1e400", "Infinity"])
def test_infinite_or_nan_numbers_are_not_times(value):
    with pytest.raises(ValueError, match="is not a time"):
        parse_time(value)
