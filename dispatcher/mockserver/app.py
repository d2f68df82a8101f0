"""The aiohttp application of the mock provider."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import random
import time
from dataclasses import dataclass

import orjson
from aiohttp import web

from dispatcher.mockserver.limits import SlidingWindowLimiter
from dispatcher.mockserver.stats import MockStats
from dispatcher.providers.mock.replies import directives, error_body, fingerprint, mock_reply
from dispatcher.tokens import estimate_prompt_tokens, requested_completion_tokens

log = logging.getLogger("dispatcher.mockserver")


@dataclass
class MockOptions:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    api_key: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    window_s: float = 60.0
    error_rate: float = 0.0
    hang_rate: float = 0.0
    hang_s: float = 3600.0
    seed: int | None = None
    verbose: bool = False


class MockProviderState:
    """Everything the server remembers between requests (reset by POST /mock/reset)."""

    def __init__(self, options: MockOptions):
        self.options = options
        self.rng = random.Random(options.seed)
        self.started = time.monotonic()
        self.reset()

    def reset(self) -> None:
        o = self.options
        self.stats = MockStats()
        self.fail_first: collections.Counter = collections.Counter()
        self.limiter = (
            SlidingWindowLimiter(o.rpm, o.tpm, o.window_s) if (o.rpm or o.tpm) else None
        )
        self.request_ids = itertools.count(1)

    def latency_s(self) -> float:
        o = self.options
        ms = o.latency_ms
        if o.jitter_ms:
            ms = self.rng.uniform(o.latency_ms - o.jitter_ms, o.latency_ms + o.jitter_ms)
        return max(0.0, ms) / 1000.0


def _json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


async def chat_completions(request: web.Request) -> web.Response:
    state: MockProviderState = request.app["state"]
    stats = state.stats
    stats.enter(time.monotonic() - state.started)
    status = 500
    try:
        response = await _answer(state, request)
        status = response.status
        return response
    finally:
        stats.leave(status)
        if state.options.verbose:
            log.info("%s %s -> %d", request.method, request.path, status)


async def _answer(state: MockProviderState, request: web.Request) -> web.Response:
    options = state.options
    request_id = f"req_mock_{next(state.request_ids)}"
    raw = await request.read()
    try:
        body = orjson.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except (orjson.JSONDecodeError, ValueError):
        return _json_response(400, error_body(400, "We could not parse the JSON body of your request.", None, "invalid_request_error"))

    if options.api_key is not None:
        given = request.headers.get("Authorization", "")
        key = given[7:] if given.startswith("Bearer ") else given
        if key != options.api_key:
            message = (
                f"Incorrect API key provided: {key}. You can find your API key at "
                "https://platform.example/account/api-keys."
            )
            return _json_response(401, error_body(401, message, "invalid_api_key", "invalid_request_error"))

    reply = mock_reply(body, str(body.get("model", "mock")))
    headers = {"x-request-id": request_id}
    if state.limiter is not None:
        prompt_tokens = estimate_prompt_tokens(body)
        default_completion = reply.usage["completion_tokens"] if reply.usage else 0
        tokens = prompt_tokens + requested_completion_tokens(body, default_completion)
        now = time.monotonic()
        verdict = state.limiter.check(now, tokens)
        headers.update(state.limiter.headers(verdict))
        if not verdict.admitted:
            message = "Rate limit reached for requests or tokens (mock). Please try again later."
            return _json_response(429, error_body(429, message, "rate_limit_exceeded", "requests"), headers)
        state.stats.admitted_at.append([round(now - state.started, 4), tokens])

    fp = fingerprint(body)
    found = directives(body)
    if "fail_first" in found:
        state.fail_first[fp] += 1
        if state.fail_first[fp] <= int(found["fail_first"] or 1):
            return _json_response(500, error_body(500, "scripted failure (mock fail_first)", None, "server_error"), headers)
    if options.error_rate and state.rng.random() < options.error_rate:
        await asyncio.sleep(state.latency_s())
        return _json_response(500, error_body(500, "The server had an error (mock).", None, "server_error"), headers)
    if options.hang_rate and state.rng.random() < options.hang_rate:
        await asyncio.sleep(options.hang_s)

    delay = state.latency_s() + reply.sleep_s
    if delay:
        await asyncio.sleep(delay)
    if reply.status == 200 and reply.usage is not None:
        state.stats.completion(fp, reply.usage)
    content_type = "application/json" if reply.usage is not None or reply.status != 200 else "text/html"
    return web.Response(status=reply.status, body=reply.body, content_type=content_type, headers=headers)


async def stats_handler(request: web.Request) -> web.Response:
    state: MockProviderState = request.app["state"]
    limiter = state.limiter
    detail = request.query.get("detail") == "1"
    data = state.stats.as_dict(
        detail=detail,
        peak_requests=limiter.peak_requests if limiter else 0,
        peak_tokens=limiter.peak_tokens if limiter else 0,
    )
    data["options"] = {k: v for k, v in vars(state.options).items() if k != "api_key"}
    return _json_response(200, json.dumps(data).encode())


async def reset_handler(request: web.Request) -> web.Response:
    request.app["state"].reset()
    return _json_response(200, b'{"reset": true}')


async def health_handler(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app(options: MockOptions) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app["state"] = MockProviderState(options)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_get("/mock/stats", stats_handler)
    app.router.add_post("/mock/reset", reset_handler)
    app.router.add_get("/health", health_handler)
    return app
