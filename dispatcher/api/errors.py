"""OpenAI-shaped errors, ``{"error": {"message", "type", "param", "code"}}``, and the handlers
that turn every failure of a request into one.

The openai SDK picks its exception class from the status alone (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 409 ConflictError, 413,
422 UnprocessableEntityError, 429 RateLimitError, >= 500 InternalServerError) and retries
408, 409, 429 and >= 500 unless told ``x-should-retry: false``. So a 5xx here means "our
fault, try again": a database or Redis that cannot be reached (503), or a bug (500).

Errors are mapped once, here: routes raise ``ApiError`` or let the library's errors
(``dispatcher.errors``) through.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from dispatcher.errors import (
    DispatcherError,
    InfrastructureError,
    NotFoundError,
    UsageError,
    user_error_for,
)
from dispatcher.keys import ForbiddenForKey

log = logging.getLogger("dispatcher.api")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    422: "unprocessable_entity_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}
# A database or Redis that cannot be reached usually comes back within seconds.
RETRY_AFTER_S = "1"


class ApiError(Exception):
    """A request that gets an error answer: status, message, and OpenAI's param and code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


class BodyTooLarge(HTTPException):
    """The request body is over ``api.max_body_bytes``.

    An HTTPException, not an ApiError: FastAPI turns any other error raised while it reads a
    body into a 400, and lets only HTTPExceptions through.
    """

    def __init__(self, limit: int):
        super().__init__(
            413,
            f"the request body is larger than {limit} bytes (dispatcher_settings.api.max_body_bytes)",
        )


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorAnswer(BaseModel):
    """The body of every answer that is not a success, whatever its status."""

    error: ErrorDetail


# What the OpenAPI schema declares besides each route's success: any other status is an error in
# OpenAI's shape (a 400 for a bad body or query, never FastAPI's 422 ``detail`` list).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "default": {"model": ErrorAnswer, "description": "An error, in OpenAI's shape"},
}


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every failure of a request answers in OpenAI's error shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(DispatcherError, _dispatcher_error)
    app.add_exception_handler(Exception, _unexpected)


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.message, param=exc.param, code=exc.code, headers=exc.headers)


def _union_member_tag(part) -> bool:
    """pydantic names the member of a union it tried (``priority.int``); the caller named only
    the field."""
    return isinstance(part, str) and (part in ("int", "str", "float", "bool", "none") or "[" in part)


async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """Pydantic's findings on a body or query, as OpenAI answers them: 400 naming the param."""
    problems = exc.errors()
    first = problems[0] if problems else {}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return error_response(400, f"the body is not valid JSON: {detail}".rstrip(": "), code="invalid_json")
    location = [str(part) for part in first.get("loc", ())
                if part not in ("body", "query", "path", "header") and not _union_member_tag(part)]
    param = ".".join(location) or None
    message = first.get("msg", "invalid request")
    if param:
        message = f"{param}: {message}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem(s))"
    return error_response(400, message, param=param, code="invalid_request")


async def _http_exception(_request: Request, exc: HTTPException) -> JSONResponse:
    """Routing errors (no such path, wrong method), a body too large, malformed multipart."""
    status = exc.status_code
    if status == 404:
        message = "no such endpoint; the API serves /v1/files, /v1/batches, /v1/chat/completions and /v1/models"
        code = "unknown_url"
    elif status == 405:
        message, code = "this endpoint does not take that HTTP method", "method_not_allowed"
    else:
        message, code = str(exc.detail), None
    return error_response(status, message, code=code, headers=getattr(exc, "headers", None))


async def _dispatcher_error(_request: Request, exc: DispatcherError) -> JSONResponse:
    """The library's own errors: their messages are written for users already."""
    if isinstance(exc, ForbiddenForKey):
        return error_response(403, str(exc), code="forbidden_for_key")
    if isinstance(exc, NotFoundError):
        return error_response(404, str(exc), code="not_found")
    if isinstance(exc, UsageError):
        return error_response(400, str(exc), code="invalid_request")
    if isinstance(exc, InfrastructureError) and exc.transient:
        return error_response(503, str(exc), code="service_unavailable", headers={"retry-after": RETRY_AFTER_S})
    log.error("request failed: %s", exc)
    return error_response(500, str(exc), code="internal_error")


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    """A database or Redis failure the library did not map, or a bug. SQLAlchemy's own text
    carries the statement's parameters (request bodies), so it is never shown."""
    explained = user_error_for(exc)
    if isinstance(explained, InfrastructureError) and explained.transient:
        return error_response(503, str(explained), code="service_unavailable",
                              headers={"retry-after": RETRY_AFTER_S})
    log.exception("unexpected error while answering a request")
    return error_response(500, "internal error; the server log has the details", code="internal_error")
