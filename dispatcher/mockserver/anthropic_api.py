"""Anthropic's Messages API as the mock speaks it: ``POST /v1/messages``, strictly.

Checked in Anthropic's order and words: ``x-api-key`` (or ``Authorization: Bearer KEY``, as the
official SDK sends it since 2.x; 401 ``authentication_error`` without a key, or when
``--api-key`` is set and it differs), ``anthropic-version`` (400 without it or with an
version that is not a date), then the body (``anthropic_checks.py``). Errors are Anthropic's
``{"type": "error", "error": {"type", "message"}, "request_id"}``; every answer has a
``request-id`` header, and ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
{limit,remaining,reset}`` headers for the limits that are set (``--rpm``, ``--tpm``, ``--itpm``,
``--otpm``; reset is the RFC 3339 time the window is empty again). A request over a limit gets
429 ``rate_limit_error`` with ``retry-after``; ``--error-rate`` gives 500 ``api_error`` and
``--overload-rate`` 529 ``overloaded_error``. The answer itself: ``anthropic_replies.py``.

Directives in the system prompt or a message: ``[[mock:status=N]]`` (that status, with the
error type Anthropic uses for it), ``[[mock:context_window]]`` (400 "prompt is too long"),
``[[mock:content_policy]]`` (200 with ``stop_reason: refusal``), ``[[mock:invalid_json]]``,
``[[mock:sleep=S]]``, ``[[mock:fail_first=N]]``, ``[[mock:echo_key]]`` (quotes the
``x-api-key`` received), and ``[[mock:tool]]`` / ``[[mock:tool=NAME]]`` in the last user message.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import orjson
from aiohttp import web

from dispatcher.mockserver.anthropic_checks import request_problem
from dispatcher.mockserver.anthropic_replies import fingerprint, message_answer
from dispatcher.mockserver.limits import Decision, RateLimits, Verdict
from dispatcher.mockserver.pipeline import JSON, Plan, read_json_object, respond
from dispatcher.mockserver.state import STATE, MockState
from dispatcher.providers.mock.replies import directives

# Dated versions: 2023-06-01 (the one the adapter sends), 2023-01-01, and the newer
# ones recent SDKs send (2.14 sends 2026-10-21); a value that is not a date is refused.
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CONTEXT_WINDOW = 200_000
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 408: "timeout_error", 409: "conflict_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 504: "timeout_error",
    529: "overloaded_error",
}
_LIMIT_WORDS = {"requests": "requests", "tokens": "tokens", "input_tokens": "input tokens",
                "output_tokens": "output tokens"}


def error_body(status: int, message: str, request_id: str) -> bytes:
    """Anthropic's error body, with the error type it uses for ``status``."""
    error_type = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    error = {"type": error_type, "message": message}
    return orjson.dumps({"type": "error", "error": error, "request_id": request_id})


class AnthropicMessages:
    """The ``Dialect`` of ``/v1/messages``."""

    route = "anthropic.messages"

    def first_headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": request_id}

    def error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        return respond(status, error_body(status, message, headers["request-id"]), headers)

    def check_headers(self, request: web.Request, state: MockState, headers: dict[str, str]) -> web.Response | None:
        """A refusal of the key or the ``anthropic-version`` header, or None (every route)."""
        key = _api_key(request)
        if not key:
            return self.error(401, "x-api-key header is required", headers)
        if state.options.api_key is not None and key != state.options.api_key:
            return self.error(401, "invalid x-api-key", headers)
        version = request.headers.get("anthropic-version")
        if not version:
            return self.error(400, "anthropic-version: header is required", headers)
        if not _VERSION.match(version):
            return self.error(400, f"anthropic-version: '{version}' is not a valid version", headers)
        return None

    async def plan(self, request: web.Request, state: MockState, headers: dict[str, str]) -> Plan | web.Response:
        refused = self.check_headers(request, state, headers)
        if refused is not None:
            return refused
        body = await read_json_object(request)
        if body is None:
            return self.error(400, "There was an issue with the request body: it is not a JSON object", headers)
        problem = request_problem(body)
        if problem is not None:
            return self.error(400, problem, headers)
        return self.plan_body(body, request, state, headers)

    def plan_body(
        self, body: dict[str, Any], request: web.Request, state: MockState, headers: dict[str, str]
    ) -> Plan | web.Response:
        """The answer to a checked body (also a batch request's, ``anthropic_batches.py``)."""
        found = _directives(body)
        try:
            sleep_s = float(found.get("sleep") or 0.0)
            status = int(found["status"] or 500) if "status" in found else None
            fail_first = int(found["fail_first"] or 1) if "fail_first" in found else 0
            if status is not None and not 100 <= status <= 599:
                raise ValueError(f"status {status} is not an HTTP status")
        except ValueError as exc:
            return self.error(400, f"The mock could not read this request ({exc}).", headers)
        echoed = f"You called me with: {_key_header(request)}" if "echo_key" in found else None
        cache = state.prompt_cache
        answer = message_answer(
            body, cache=cache, now=time.monotonic(), prompt_token_scale=state.options.prompt_token_scale,
            fixed_text=echoed, tool_named=_last_user_directives(body).get("tool"),
            refusal="content_policy" in found,
        )
        fp, model = fingerprint(body), body["model"]
        scripted = self._scripted(found, status, answer.billed["prompt_tokens"], headers)
        if scripted is not None:
            status_code, data, content_type = scripted
            return Plan(fp, model, answer.charge, status_code, data, None, content_type, sleep_s, fail_first)
        return Plan(fp, model, answer.charge, 200, answer.body, answer.billed, JSON, sleep_s, fail_first,
                    on_admit=lambda: answer.cache.commit(cache, time.monotonic()))

    def _scripted(self, found: dict[str, str], status: int | None, prompt_tokens: int,
                  headers: dict[str, str]) -> tuple[int, bytes, str] | None:
        """A directive's error answer: (status, body, content type), or None."""
        request_id = headers["request-id"]
        if status is not None:
            return status, error_body(status, f"mock error {status}", request_id), JSON
        if "context_window" in found:
            tokens = CONTEXT_WINDOW + max(1, prompt_tokens)
            message = f"prompt is too long: {tokens} tokens > {CONTEXT_WINDOW} maximum"
            return 400, error_body(400, message, request_id), JSON
        if "invalid_json" in found:
            return 200, b"<html>this is not json</html>", "text/html"
        return None

    def limit_headers(self, decision: Decision, limits: RateLimits) -> dict[str, str]:
        headers: dict[str, str] = {}
        wall = time.time()
        calls = decision.calls
        if limits.calls.rpm is not None:
            _add(headers, "requests", limits.calls.rpm, calls.remaining_requests, calls, wall)
        if limits.calls.tpm is not None:
            _add(headers, "tokens", limits.calls.tpm, calls.remaining_tokens, calls, wall)
        for name, limiter, verdict in (("input-tokens", limits.input, decision.input),
                                       ("output-tokens", limits.output, decision.output)):
            if limiter.tpm is not None:
                _add(headers, name, limiter.tpm, verdict.remaining_tokens, verdict, wall)
        if not decision.admitted:
            headers["retry-after"] = str(max(1, math.ceil(decision.retry_after_s)))
        return headers

    def rate_limited(
        self, request: web.Request, decision: Decision, plan: Plan, headers: dict[str, str]
    ) -> web.Response:
        limits = request.app[STATE].limits
        kind = decision.limited_by or "requests"
        limit, _ = limits.usage_of(kind)
        window = "minute" if limits.window_s == 60 else f"{limits.window_s:g} seconds"
        message = (
            f"This request would exceed the rate limit for your organization (mock) of {limit} "
            f"{_LIMIT_WORDS[kind]} per {window}. For details, refer to: "
            "https://docs.claude.com/en/api/rate-limits. You can see the response headers for current "
            "usage. Please reduce the prompt length or the maximum tokens requested, or try again later."
        )
        return self.error(429, message, headers)

    def server_error(self, headers: dict[str, str], detail: str | None = None) -> web.Response:
        return self.error(500, f"Internal server error ({detail})" if detail else "Internal server error", headers)

    def overloaded(self, headers: dict[str, str]) -> web.Response:
        return self.error(529, "Overloaded", headers)


def _add(
    headers: dict[str, str], name: str, limit: int, remaining: int | None, verdict: Verdict, wall: float
) -> None:
    prefix = f"anthropic-ratelimit-{name}"
    headers[f"{prefix}-limit"] = str(limit)
    headers[f"{prefix}-remaining"] = str(remaining if remaining is not None else limit)
    # Rounded up to the second: at that time the window is surely empty.
    reset = math.ceil(wall + verdict.replenished_s)
    headers[f"{prefix}-reset"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset))


def _api_key(request: web.Request) -> str:
    """The key from ``x-api-key``, or from ``Authorization: Bearer`` (the official SDK sends
    its api_key that way since its 2.x releases, and the API takes both)."""
    key = request.headers.get("x-api-key")
    if key is None:
        given = request.headers.get("Authorization", "")
        key = given[7:] if given[:7].lower() == "bearer " else ""
    return key


def _key_header(request: web.Request) -> str:
    """What the echo_key directive quotes: the header that carried the key, and its value."""
    if "x-api-key" in request.headers:
        return f"x-api-key: {request.headers['x-api-key']}"
    return f"Authorization: {request.headers.get('Authorization', '')}"


def _directives(body: dict[str, Any]) -> dict[str, str]:
    """Directives in the system prompt and the messages."""
    system = body.get("system")
    if system:
        return directives({"messages": [{"content": system}, *body["messages"]]})
    return directives(body)


def _last_user_directives(body: dict[str, Any]) -> dict[str, str]:
    last = body["messages"][-1]
    if last["role"] != "user":
        last = body["messages"][-2] if len(body["messages"]) > 1 else {"content": ""}
    return directives({"messages": [last]})
