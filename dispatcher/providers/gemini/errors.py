"""Gemini's error answers mapped to our classes.

Google's OpenAI-compatible endpoint answers errors in Google's own shape, often wrapped in a
JSON list: ``[{"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED",
"details": [...]}}]`` (or the same object without the list). The canonical ``status`` string
decides the class; within INVALID_ARGUMENT the message and details say more:

    RESOURCE_EXHAUSTED                  RateLimitError (retry_after: Retry-After, else RetryInfo)
    INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
                                        BadRequestError, or
        reason API_KEY_INVALID            AuthenticationError (Google answers a bad key with 400)
        "input token count ... exceeds"   ContextWindowExceededError
        safety / prohibited content       ContentPolicyViolationError
    UNAUTHENTICATED, PERMISSION_DENIED  AuthenticationError
    NOT_FOUND                           NotFoundError
    DEADLINE_EXCEEDED                   ProviderTimeoutError
    UNAVAILABLE, INTERNAL, UNKNOWN      ServerError

Anything else (no Google error in the body, another status string) is mapped as OpenAI's.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson

from dispatcher.config.secrets import redact
from dispatcher.providers import errors as pe
from dispatcher.providers.openai.errors import MAX_MESSAGE_CHARS, error_from_response
from dispatcher.providers.openai.headers import parse_duration, retry_after_seconds

STATUS_CLASSES: dict[str, type[pe.ProviderError]] = {
    "RESOURCE_EXHAUSTED": pe.RateLimitError,
    "INVALID_ARGUMENT": pe.BadRequestError,
    "FAILED_PRECONDITION": pe.BadRequestError,
    "OUT_OF_RANGE": pe.BadRequestError,
    "UNAUTHENTICATED": pe.AuthenticationError,
    "PERMISSION_DENIED": pe.AuthenticationError,
    "NOT_FOUND": pe.NotFoundError,
    "DEADLINE_EXCEEDED": pe.ProviderTimeoutError,
    "UNAVAILABLE": pe.ServerError,
    "INTERNAL": pe.ServerError,
    "UNKNOWN": pe.ServerError,
}
_CONTEXT_WINDOW = re.compile(
    r"token count.{0,80}exceeds|exceeds the maximum number of tokens|context (?:window|length)",
    re.IGNORECASE | re.DOTALL,
)
_CONTENT_POLICY = re.compile(r"safety|prohibited[ _]content|content policy", re.IGNORECASE)
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def gemini_error_from_response(status: int, headers: httpx.Headers, body: bytes) -> pe.ProviderError:
    """The ProviderError for a non-2xx answer of Gemini's OpenAI-compatible endpoint."""
    error = google_error(body)
    cls = STATUS_CLASSES.get(str(error.get("status") or "").upper()) if error else None
    if error is None or cls is None:
        return error_from_response(status, headers, body)
    text = redact(body[:20000].decode("utf-8", errors="replace")) or ""
    message = (redact(str(error.get("message") or "")) or f"HTTP {status}")[:MAX_MESSAGE_CHARS]
    fields: dict[str, Any] = dict(status_code=status, body=text, request_id=headers.get("x-request-id"))
    details = error.get("details") if isinstance(error.get("details"), list) else []
    if cls is pe.BadRequestError:
        cls = _bad_request_class(message, details)
    if cls in (pe.RateLimitError, pe.ServerError):
        fields["retry_after"] = retry_after_seconds(headers) or _retry_delay(details)
    return cls(message, **fields)


def google_error(body: bytes) -> dict[str, Any] | None:
    """The ``{"code", "message", "status", "details"}`` object of a Google error body, if any.

    Unwraps the list Google puts around it, and a proxy's error whose message is the JSON of
    Google's (the inner error is the one that names the status).
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = _unwrap(data)
    if error is None:
        return None
    message = error.get("message")
    if isinstance(message, str) and message.lstrip()[:1] in ("{", "["):
        try:
            inner = _unwrap(orjson.loads(message))
        except orjson.JSONDecodeError:
            inner = None
        if inner is not None and inner.get("status"):
            return inner
    return error


def _unwrap(data: Any) -> dict[str, Any] | None:
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _bad_request_class(message: str, details: list[Any]) -> type[pe.ProviderError]:
    reasons = {str(d.get("reason", "")) for d in details if isinstance(d, dict) and d.get("@type") == _ERROR_INFO}
    if any(reason.startswith("API_KEY_") for reason in reasons) or message.startswith("API key not valid"):
        return pe.AuthenticationError
    if _CONTEXT_WINDOW.search(message):
        return pe.ContextWindowExceededError
    if _CONTENT_POLICY.search(message):
        return pe.ContentPolicyViolationError
    return pe.BadRequestError


def _retry_delay(details: list[Any]) -> float | None:
    """RetryInfo's ``retryDelay`` (a protobuf Duration in JSON: "37s", "0.5s")."""
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == _RETRY_INFO:
            return parse_duration(str(detail.get("retryDelay") or ""))
    return None
