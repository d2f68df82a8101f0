"""Retry-After and x-ratelimit-* headers."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from dispatcher.providers.base import RateLimitInfo
from dispatcher.providers.openai.headers import parse_duration, rate_limit_info, retry_after_seconds


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h30m", 5400.0),
        ("1m30.5s", 90.5),
        ("0.5", 0.5),
        ("12", 12.0),
        ("-3", 0.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "1d"])
def test_parse_duration_unreadable(text):
    assert parse_duration(text) is None


def test_retry_after_seconds():
    assert retry_after_seconds(httpx.Headers({"retry-after": "3"})) == 3.0


def test_retry_after_ms_wins():
    headers = httpx.Headers({"retry-after-ms": "250", "retry-after": "3"})
    assert retry_after_seconds(headers) == pytest.approx(0.25)


def test_bad_retry_after_ms_falls_back():
    headers = httpx.Headers({"retry-after-ms": "abc", "retry-after": "4"})
    assert retry_after_seconds(headers) == 4.0


def test_retry_after_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = retry_after_seconds(httpx.Headers({"retry-after": when}))
    assert 27 <= seconds <= 31


def test_retry_after_http_date_in_past_is_zero():
    headers = httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_seconds(headers) == 0.0


def test_ratelimit_reset_headers_take_the_longest():
    headers = httpx.Headers({"x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "6m0s"})
    assert retry_after_seconds(headers) == pytest.approx(360.0)


def test_retry_after_beats_reset_headers():
    headers = httpx.Headers({"retry-after": "2", "x-ratelimit-reset-tokens": "6m0s"})
    assert retry_after_seconds(headers) == 2.0


def test_no_headers():
    assert retry_after_seconds(httpx.Headers()) is None
    assert retry_after_seconds(httpx.Headers({"retry-after": "whenever"})) is None


def test_rate_limit_info():
    headers = httpx.Headers(
        {
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-remaining-tokens": "149984",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-reset-tokens": "6ms",
        }
    )
    info = rate_limit_info(headers)
    assert info == RateLimitInfo(
        remaining_requests=59,
        remaining_tokens=149984,
        reset_requests_s=pytest.approx(1.0),
        reset_tokens_s=pytest.approx(0.006),
    )


def test_rate_limit_info_partial_and_bad_values():
    info = rate_limit_info(httpx.Headers({"x-ratelimit-remaining-tokens": "lots"}))
    assert info is not None
    assert info.remaining_tokens is None
    assert info.remaining_requests is None
    assert info.reset_tokens_s is None


def test_rate_limit_info_absent():
    assert rate_limit_info(httpx.Headers({"x-ratelimit-reset-tokens": "1s"})) is None
