"""Map an OpenAI-compatible error response or transport failure to our taxonomy."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Iterator

import httpx
import orjson

from dispatcher.config.secrets import redact
from dispatcher.providers import errors as pe
from dispatcher.providers.openai.headers import retry_after_seconds

MAX_MESSAGE_CHARS = 2000

_CONTEXT_WINDOW_HINTS = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "context length",
    "too many tokens",
    "prompt is too long",
    "input is too long",
)
_CONTENT_POLICY_HINTS = (
    "content_policy",
    "content_filter",
    "content management policy",
    "safety system",
    "content exists risk",  # DeepSeek
    "data_inspection_failed",  # Qwen / DashScope
    "inappropriate content",  # DashScope's message
    "safety settings",  # Gemini's OpenAI-compatible endpoint
)


def error_from_response(status: int, headers: httpx.Headers, body: bytes) -> pe.ProviderError:
    """The ProviderError for a non-2xx response, with the provider's message (redacted)."""
    text = redact(body[:20000].decode("utf-8", errors="replace")) or ""
    message, code, error_type = _read_error_body(body)
    message = redact(message or text.strip() or f"HTTP {status}") or ""
    message = message[:MAX_MESSAGE_CHARS]
    request_id = headers.get("x-request-id")
    fields = dict(status_code=status, body=text, request_id=request_id)
    haystack = f"{code} {error_type} {message}".lower()

    if status == 429:
        if "insufficient_quota" in haystack or "quota" in (code or ""):
            return pe.InsufficientQuotaError(message, **fields)
        return pe.RateLimitError(message, retry_after=retry_after_seconds(headers), **fields)
    if status in (401, 403):
        return pe.AuthenticationError(message, **fields)
    if status == 404:
        return pe.NotFoundError(message, **fields)
    if status in (400, 413, 422):
        if any(hint in haystack for hint in _CONTEXT_WINDOW_HINTS):
            return pe.ContextWindowExceededError(message, **fields)
        if any(hint in haystack for hint in _CONTENT_POLICY_HINTS):
            return pe.ContentPolicyViolationError(message, **fields)
        return pe.BadRequestError(message, **fields)
    if status == 408:
        return pe.ProviderTimeoutError(message, **fields)
    if status >= 500:
        return pe.ServerError(message, retry_after=retry_after_seconds(headers), **fields)
    if 400 <= status < 500:  # other client errors: the request, not the moment, is wrong
        return pe.BadRequestError(f"HTTP {status}: {message}", **fields)
    return pe.ProviderError(f"unexpected HTTP {status}: {message}", **fields)


def _read_error_body(body: bytes) -> tuple[str | None, str | None, str | None]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None, None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return (
            _str_or_none(error.get("message")),
            _str_or_none(error.get("code")),
            _str_or_none(error.get("type")),
        )
    if isinstance(error, str):
        return error, None, None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"], _str_or_none(data.get("code")), None
    return None, None, None


def _str_or_none(value) -> str | None:
    return str(value) if value is not None else None


@contextlib.contextmanager
def map_transport_errors(api_base: str, timeout: float) -> Iterator[None]:
    """Turn httpx/asyncio failures of one call into our classes (``raise ... from exc``)."""
    try:
        yield
    except httpx.ConnectTimeout as exc:
        raise pe.ProviderUnreachableError(
            f"cannot connect to {api_base} within {timeout:g}s"
        ) from exc
    except (httpx.TimeoutException, TimeoutError, asyncio.TimeoutError) as exc:
        raise pe.ProviderTimeoutError(
            f"no response from {api_base} within {timeout:g}s"
        ) from exc
    except httpx.ConnectError as exc:
        raise pe.ProviderUnreachableError(
            f"cannot connect to {api_base}: {redact(str(exc)) or type(exc).__name__}"
        ) from exc
    except (httpx.TransportError, OSError) as exc:
        raise pe.ProviderConnectionError(
            f"connection to {api_base} failed: {redact(str(exc)) or type(exc).__name__}"
        ) from exc
