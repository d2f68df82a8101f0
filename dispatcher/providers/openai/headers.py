"""Reading OpenAI-style rate-limit headers: Retry-After and x-ratelimit-*."""

from __future__ import annotations

import email.utils
import math
import re
import time

import httpx

from dispatcher.providers.base import RateLimitInfo

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """'1s', '6m0s', '20ms', '0.5' -> seconds; None when unreadable."""
    if not text:
        return None
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, value) if math.isfinite(value) else None
    parts = _DURATION_PART.findall(text)
    if not parts:
        return None
    return sum(float(value) * _UNIT_SECONDS[unit] for value, unit in parts)


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """How long the provider asked us to wait, from the most precise header present."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        seconds = parse_duration(value)
        if seconds is not None:
            return seconds
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    resets = [
        parse_duration(headers.get(name))
        for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
    ]
    resets = [r for r in resets if r is not None]
    return max(resets) if resets else None


def rate_limit_info(headers: httpx.Headers) -> RateLimitInfo | None:
    remaining_requests = headers.get("x-ratelimit-remaining-requests")
    remaining_tokens = headers.get("x-ratelimit-remaining-tokens")
    if remaining_requests is None and remaining_tokens is None:
        return None
    return RateLimitInfo(
        remaining_requests=_int_or_none(remaining_requests),
        remaining_tokens=_int_or_none(remaining_tokens),
        reset_requests_s=parse_duration(headers.get("x-ratelimit-reset-requests")),
        reset_tokens_s=parse_duration(headers.get("x-ratelimit-reset-tokens")),
        limit_requests=_int_or_none(headers.get("x-ratelimit-limit-requests")),
        limit_tokens=_int_or_none(headers.get("x-ratelimit-limit-tokens")),
    )


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None
