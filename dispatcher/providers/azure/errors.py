"""Azure OpenAI's error answers mapped to our classes: OpenAI's mapping plus Azure's shapes.

Azure answers in OpenAI's ``{"error": {...}}`` shape, and adds:

* content filtering: a 400 whose ``code`` is ``content_filter`` or whose ``innererror`` (or
  ``inner_error``) code is ``ResponsibleAIPolicyViolation`` -> ContentPolicyViolationError,
  so ``content_policy_fallbacks`` apply;
* 429s that say "Please retry after N seconds" when no header does (``retry-after-ms`` and
  ``retry-after`` are read first, as for OpenAI);
* ``apim-request-id``, the id Azure support asks for, when there is no ``x-request-id``.
"""

from __future__ import annotations

import re

import httpx
import orjson

from dispatcher.providers import errors as pe
from dispatcher.providers.openai.errors import error_from_response

CONTENT_FILTER_CODES = frozenset({"content_filter", "responsibleaipolicyviolation"})
_RETRY_AFTER_IN_MESSAGE = re.compile(r"retry after (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


def azure_error_from_response(status: int, headers: httpx.Headers, body: bytes) -> pe.ProviderError:
    """The ProviderError for a non-2xx Azure OpenAI answer."""
    error = error_from_response(status, headers, body)
    if error.request_id is None:
        error.request_id = headers.get("apim-request-id")
    if status == 400 and not isinstance(error, pe.ContentPolicyViolationError) and _content_filtered(body):
        return pe.ContentPolicyViolationError(
            error.message, status_code=status, body=error.body, request_id=error.request_id
        )
    if isinstance(error, pe.RateLimitError) and error.retry_after is None:
        said = _RETRY_AFTER_IN_MESSAGE.search(error.message)
        if said:
            error.retry_after = float(said.group(1))
    return error


def _content_filtered(body: bytes) -> bool:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return False
    inner = error.get("innererror") or error.get("inner_error")
    codes = [error.get("code"), inner.get("code") if isinstance(inner, dict) else None]
    return any(isinstance(code, str) and code.lower() in CONTENT_FILTER_CODES for code in codes)
