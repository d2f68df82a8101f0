"""The HTTP answer to a chat completion that ended without a result, from its error-file line.

A provider's own error answer is passed on with its status when it is the caller's to fix
(4xx: a bad request, a context too long, a content refusal, a rate limit); a provider that
failed (5xx, timeouts, connection errors) answers 502/504. The queue already retried what
could be retried, so every answer here tells the SDK not to retry (``x-should-retry: false``):
a retry would be a new request, and a new bill.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from dispatcher.api.errors import error_body
from dispatcher.intake.validate import VALIDATION_CODES

# Error codes of requests that ended without a provider answer to pass on.
STATUS_BY_CODE = {
    **{code: 400 for code in VALIDATION_CODES},
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "content_policy_violation": 400,
    "batch_cancelled": 409,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "budget_exceeded": 429,
    "timeout": 504,
    "batch_expired": 504,
    "internal_error": 500,
    "worker_died": 500,
    "worker_stalled": 500,
}
UPSTREAM_FAILED = 502


def failure_response(error_line: dict[str, Any] | None, headers: dict[str, str]) -> JSONResponse:
    headers = {**headers, "x-should-retry": "false"}
    if error_line is None:  # cannot happen for an ended batch; say so rather than guess
        return JSONResponse(error_body(500, "the completion ended without a result", code="internal_error"),
                            status_code=500, headers=headers)
    response = error_line.get("response")
    if response:
        status = response.get("status_code") or UPSTREAM_FAILED
        body = response.get("body")
        if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
            body = error_body(status, f"the provider answered HTTP {status}: {str(body)[:500]}",
                              code="provider_error")
        return JSONResponse(body, status_code=status if 400 <= status < 500 else UPSTREAM_FAILED, headers=headers)
    error = error_line.get("error") or {}
    code = error.get("code") or "failed"
    status = STATUS_BY_CODE.get(code, UPSTREAM_FAILED)
    return JSONResponse(error_body(status, error.get("message") or code, code=code), status_code=status,
                        headers=headers)
