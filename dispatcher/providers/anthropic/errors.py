"""Anthropic's error responses and rate-limit headers in our taxonomy: the one mapping point.

Anthropic answers ``{"type": "error", "error": {"type", "message"}, "request_id"}``. The error
type decides first, the status code when a proxy in between sent another shape:

    rate_limit_error 429        RateLimitError, retry_after from retry-after or the
                                anthropic-ratelimit-*-reset times (RFC 3339)
    overloaded_error 529        ServerError (retried with backoff)
    api_error 500, 5xx          ServerError
    invalid_request_error 400   BadRequestError; "prompt is too long" ContextWindowExceededError;
                                "credit balance is too low" InsufficientQuotaError;
                                "content filtering policy" ContentPolicyViolationError
    billing_error               InsufficientQuotaError
    authentication_error 401,
    permission_error 403        AuthenticationError
    not_found_error 404         NotFoundError
    request_too_large 413       BadRequestError

Transport failures are mapped as for any HTTP provider (``map_transport_errors``).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import orjson

from dispatcher.config.secrets import redact
from dispatcher.providers import errors as pe
from dispatcher.providers.base import RateLimitInfo
from dispatcher.providers.openai.errors import map_transport_errors
from dispatcher.providers.openai.headers import parse_duration

__all__ = ["error_from_response", "map_transport_errors", "rate_limit_info", "retry_after_seconds"]

MAX_MESSAGE_CHARS = 2000
_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")
_CONTEXT_WINDOW_HINTS = ("prompt is too long", "exceed context limit", "context window")
_NO_CREDIT_HINTS = ("credit balance is too low",)
_CONTENT_POLICY_HINTS = ("content filtering policy",)


def error_from_response(status: int, headers: httpx.Headers, body: bytes) -> pe.ProviderError:
    """The ProviderError for a non-2xx Anthropic response, its message redacted."""
    text = redact(body[:20000].decode("utf-8", errors="replace")) or ""
    error_type, message, body_request_id = _read_error_body(body)
    message = (redact(message or text.strip() or f"HTTP {status}") or "")[:MAX_MESSAGE_CHARS]
    fields = dict(status_code=status, body=text, request_id=headers.get("request-id") or body_request_id)
    lowered = message.lower()

    if error_type == "rate_limit_error" or status == 429:
        return pe.RateLimitError(message, retry_after=retry_after_seconds(headers), **fields)
    if error_type == "billing_error" or any(hint in lowered for hint in _NO_CREDIT_HINTS):
        return pe.InsufficientQuotaError(message, **fields)
    if error_type in ("overloaded_error", "api_error") or status >= 500:
        return pe.ServerError(message, retry_after=retry_after_seconds(headers), **fields)
    if error_type in ("authentication_error", "permission_error") or status in (401, 403):
        return pe.AuthenticationError(message, **fields)
    if error_type == "not_found_error" or status == 404:
        return pe.NotFoundError(message, **fields)
    if status == 408 or error_type == "timeout_error":
        return pe.ProviderTimeoutError(message, **fields)
    if status == 409:  # a conflict the SDK retries; not the request's fault
        return pe.ProviderError(message, **fields)
    if 400 <= status < 500:
        if any(hint in lowered for hint in _CONTEXT_WINDOW_HINTS):
            return pe.ContextWindowExceededError(message, **fields)
        if any(hint in lowered for hint in _CONTENT_POLICY_HINTS):
            return pe.ContentPolicyViolationError(message, **fields)
        return pe.BadRequestError(message, **fields)
    return pe.ProviderError(f"unexpected HTTP {status}: {message}", **fields)


def _read_error_body(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(error type, message, request id) from an Anthropic error body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None, None
    if not isinstance(data, dict):
        return None, None, None
    error = data.get("error")
    request_id = data.get("request_id") if isinstance(data.get("request_id"), str) else None
    if isinstance(error, dict):
        error_type, message = error.get("type"), error.get("message")
        return (
            error_type if isinstance(error_type, str) else None,
            message if isinstance(message, str) else None,
            request_id,
        )
    return None, (error if isinstance(error, str) else None), request_id


def retry_after_seconds(headers: httpx.Headers, now: float | None = None) -> float | None:
    """How long to wait: ``retry-after`` when given, else until the exhausted limit resets."""
    seconds = parse_duration(headers.get("retry-after"))
    if seconds is not None:
        return seconds
    now = time.time() if now is None else now
    resets = {limit: _reset_in(headers, limit, now) for limit in _LIMITS}
    exhausted = [
        reset for limit, reset in resets.items()
        if reset is not None and headers.get(f"anthropic-ratelimit-{limit}-remaining") == "0"
    ]
    if exhausted:
        return max(exhausted)
    known = [reset for reset in resets.values() if reset is not None]
    return min(known) if known else None


def rate_limit_info(headers: httpx.Headers, now: float | None = None) -> RateLimitInfo | None:
    """What the ``anthropic-ratelimit-*`` headers say the key has left. Tokens are the
    scarcest of the token limits Anthropic reports (tokens, input tokens, output tokens), with
    that limit's reset: any of them at zero pauses the deployment until it resets."""
    remaining_requests = _int_or_none(headers.get("anthropic-ratelimit-requests-remaining"))
    token_limits = [
        (remaining, limit) for limit in ("tokens", "input-tokens", "output-tokens")
        if (remaining := _int_or_none(headers.get(f"anthropic-ratelimit-{limit}-remaining"))) is not None
    ]
    if remaining_requests is None and not token_limits:
        return None
    now = time.time() if now is None else now
    remaining_tokens, scarcest = min(token_limits) if token_limits else (None, "tokens")
    return RateLimitInfo(
        remaining_requests=remaining_requests,
        remaining_tokens=remaining_tokens,
        reset_requests_s=_reset_in(headers, "requests", now),
        reset_tokens_s=_reset_in(headers, scarcest, now),
        limit_requests=_int_or_none(headers.get("anthropic-ratelimit-requests-limit")),
        limit_tokens=_int_or_none(headers.get(f"anthropic-ratelimit-{scarcest}-limit")),
        remaining_input_tokens=_int_or_none(headers.get("anthropic-ratelimit-input-tokens-remaining")),
        limit_input_tokens=_int_or_none(headers.get("anthropic-ratelimit-input-tokens-limit")),
        remaining_output_tokens=_int_or_none(headers.get("anthropic-ratelimit-output-tokens-remaining")),
        limit_output_tokens=_int_or_none(headers.get("anthropic-ratelimit-output-tokens-limit")),
    )


def _reset_in(headers: httpx.Headers, limit: str, now: float) -> float | None:
    """Seconds until ``anthropic-ratelimit-<limit>-reset`` (an RFC 3339 time)."""
    value = headers.get(f"anthropic-ratelimit-{limit}-reset")
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:  # RFC 3339 always has an offset; a bare time is taken as UTC
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
