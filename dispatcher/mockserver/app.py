"""The mock provider's aiohttp application: its options, its state, routes and handlers.

The replies themselves come from ``dispatcher.providers.mock.replies`` (shared with the
in-process ``mock/`` adapter); this module adds what only a server over HTTP can do: keys,
rate limits, injected faults and hangs, latency, and counting what it was sent.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from dispatcher.mockserver.limits import SlidingWindowLimiter, Verdict, format_duration
from dispatcher.mockserver.stats import InFlight, MockStats
from dispatcher.providers.mock.replies import directives, error_body, fingerprint, mock_reply
from dispatcher.tokens import estimate_prompt_tokens, requested_completion_tokens

log = logging.getLogger("dispatcher.mockserver")

_JSON = "application/json"
# A status an unexpected exception turns into (aiohttp answers 500), and the one recorded for
# a request whose handler was cancelled (server stopping): nginx's "client closed request".
_CRASHED = 500
_CANCELLED = 499


@dataclass
class MockOptions:
    """How the mock provider behaves; the CLI flags, one field each (``--latency-ms`` ...)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: the OS picks a free port
    port_file: str | None = None  # written (atomically) with the bound port once listening
    latency_ms: float = 0.0
    jitter_ms: float = 0.0  # latency is uniform in [latency - jitter, latency + jitter], >= 0
    api_key: str | None = None  # when set, "Authorization: Bearer <key>" is required
    rpm: int | None = None  # requests admitted per sliding window
    tpm: int | None = None  # tokens admitted per sliding window (see _charge)
    window_s: float = 60.0
    error_rate: float = 0.0  # fraction of admitted requests answered 500
    hang_rate: float = 0.0  # fraction of admitted requests that wait hang_s first
    hang_s: float = 3600.0
    seed: int | None = None  # for the error, hang and jitter draws
    verbose: bool = False  # log every request
    prompt_token_scale: float = 1.0  # bill prompts at this multiple of our estimate (a tokenizer)

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append("port must be in 0..65535")
        for name in ("latency_ms", "jitter_ms", "hang_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        for name in ("error_rate", "hang_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be between 0 and 1")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be at least 1")
        if not self.window_s > 0:
            problems.append("window_s must be positive")
        if not self.prompt_token_scale > 0:
            problems.append("prompt_token_scale must be positive")
        if problems:
            raise ValueError("; ".join(problems))

    def public(self) -> dict[str, Any]:
        """The options as shown by /mock/stats (never the key)."""
        shown = asdict(self)
        shown["api_key"] = "(set)" if self.api_key else None
        return shown


class MockState:
    """Everything the server remembers between requests (cleared by ``POST /mock/reset``)."""

    def __init__(self, options: MockOptions):
        self.options = options
        self.rng = random.Random(options.seed)
        self.started = time.monotonic()
        self.in_flight = InFlight()
        # Request ids stay unique across resets and restarts: random prefix, running number.
        self._id_prefix = f"req_mock_{os.urandom(4).hex()}_"
        self._ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        o = self.options
        self.stats = MockStats(self.in_flight)
        self.fail_first: collections.Counter[str] = collections.Counter()
        # Also without rpm/tpm: it then admits everything but still measures the peaks.
        self.window = SlidingWindowLimiter(o.rpm, o.tpm, o.window_s)

    def request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    def since_start(self, now: float) -> float:
        return now - self.started

    def latency_s(self) -> float:
        o = self.options
        ms = o.latency_ms
        if o.jitter_ms:
            ms = self.rng.uniform(o.latency_ms - o.jitter_ms, o.latency_ms + o.jitter_ms)
        return max(0.0, ms) / 1000.0


STATE = web.AppKey("state", MockState)


def _respond(status: int, body: bytes, headers: dict[str, str], content_type: str = _JSON) -> web.Response:
    # Content-Type goes in as a plain header: cheaper than aiohttp's content_type parsing.
    headers["Content-Type"] = content_type
    return web.Response(status=status, body=body, headers=headers)


def _error(status: int, message: str, code: str | None, error_type: str, headers: dict[str, str]) -> web.Response:
    return _respond(status, error_body(status, message, code, error_type), headers)


async def chat_completions(request: web.Request) -> web.Response:
    """``POST /v1/chat/completions`` (and ``/chat/completions``): count, then answer."""
    state = request.app[STATE]
    stats = state.stats  # report to the stats this request arrived in, even across a reset
    stats.enter(state.since_start(time.monotonic()))
    status = _CRASHED
    try:
        response = await _answer(state, stats, request)
        status = response.status
        return response
    except asyncio.CancelledError:
        status = _CANCELLED
        raise
    finally:
        stats.leave(status)


async def _answer(state: MockState, stats: MockStats, request: web.Request) -> web.Response:
    options = state.options
    headers = {"x-request-id": state.request_id()}

    # Authentication comes first, as with real providers: a bad key learns nothing else.
    if options.api_key is not None:
        given = request.headers.get("Authorization", "")
        key = given[7:] if given[:7].lower() == "bearer " else given
        if key != options.api_key:
            # The full key is echoed on purpose: some providers do, and the dispatcher's
            # redaction has to cope with that.
            message = (
                f"Incorrect API key provided: {key}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            return _error(401, message, "invalid_api_key", "invalid_request_error", headers)

    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        message = (
            "We could not parse the JSON body of your request. The body must be a JSON object "
            "(mock)."
        )
        return _error(400, message, None, "invalid_request_error", headers)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        message = "'messages' must be a non-empty array (mock)."
        return _error(400, message, "invalid_messages", "invalid_request_error", headers)

    prompt_id = fingerprint(body)
    stats.seen(prompt_id, time.time())
    model = str(body.get("model") or "mock")
    try:
        reply = mock_reply(body, model=model, fixed_response=_echoed_key(request, body),
                           prompt_token_scale=state.options.prompt_token_scale)
        if not 100 <= reply.status <= 599:
            raise ValueError(f"status {reply.status} is not an HTTP status")
        fail_first = _fail_first(body)
        tokens = _charge(body, reply.usage)
    except (TypeError, ValueError) as exc:  # a bad directive value, "n": "two", ...
        message = f"The mock could not read this request ({exc})."
        return _error(400, message, "invalid_mock_request", "invalid_request_error", headers)

    now = time.monotonic()
    window = state.window
    verdict = window.check(now, tokens)
    if window.limited:
        headers.update(window.headers(verdict))
    if not verdict.admitted:
        return _rate_limited(verdict, window, model, tokens, headers)
    stats.admitted(state.since_start(now), tokens)

    # Scripted and random failures apply to admitted requests only: a provider that limits
    # you does not also fail the request it refused.
    if fail_first:
        state.fail_first[prompt_id] += 1
        if state.fail_first[prompt_id] <= fail_first:
            await _sleep(state.latency_s())
            message = f"The server had an error (mock fail_first: try {state.fail_first[prompt_id]})."
            return _error(500, message, None, "server_error", headers)
    rng = state.rng
    if options.error_rate and rng.random() < options.error_rate:
        await _sleep(state.latency_s())
        return _error(500, "The server had an error while processing your request (mock).", None, "server_error", headers)
    if options.hang_rate and rng.random() < options.hang_rate:
        # Stays in flight even if the client gives up: aiohttp does not cancel the handler.
        await asyncio.sleep(options.hang_s)

    await _sleep(state.latency_s() + reply.sleep_s)
    if reply.usage is not None:
        stats.completion(prompt_id, reply.usage)
        return _respond(reply.status, reply.body, headers)
    # No usage: a directive's error body (JSON) or the invalid_json directive's HTML page.
    content_type = "text/html" if reply.status < 300 else _JSON
    return _respond(reply.status, reply.body, headers, content_type)


def _echoed_key(request: web.Request, body: dict[str, Any]) -> str | None:
    """The ``echo_key`` directive's answer: the Authorization header it was sent, quoted."""
    if "echo_key" not in directives(body):
        return None
    return f"You called me with: {request.headers.get('Authorization', '(no Authorization header)')}"


def _fail_first(body: dict[str, Any]) -> int:
    """How many tries of this prompt the ``fail_first`` directive fails (0: none)."""
    found = directives(body)
    if "fail_first" not in found:
        return 0
    return int(found["fail_first"] or 1)


def _charge(body: dict[str, Any], usage: dict[str, int] | None) -> int:
    """Tokens a request counts against tpm when admitted.

    Like OpenAI: the prompt estimate plus the completion tokens the request allows
    (max_completion_tokens or max_tokens, times n). Without one, the completion tokens this
    reply really uses (0 for scripted errors), so an unbounded request is not charged infinity.
    """
    if usage is not None:
        return usage["prompt_tokens"] + requested_completion_tokens(body, usage["completion_tokens"])
    return estimate_prompt_tokens(body) + requested_completion_tokens(body, 0)


def _rate_limited(
    verdict: Verdict, window: SlidingWindowLimiter, model: str, tokens: int, headers: dict[str, str]
) -> web.Response:
    per = f"per {window.window_s:g}s window"
    wait = format_duration(verdict.retry_after_s)
    if verdict.too_large:
        message = (
            f"Request too large for {model} (mock) on tokens {per}: Limit {window.tpm}, "
            f"Requested {tokens}. The input or output tokens must be reduced in order to run "
            "successfully."
        )
    elif verdict.limited_by == "tokens":
        message = (
            f"Rate limit reached for {model} (mock) on tokens {per}: Limit {window.tpm}, "
            f"Used {window.tokens_in_window}, Requested {tokens}. Please try again in {wait}."
        )
    else:
        message = (
            f"Rate limit reached for {model} (mock) on requests {per}: Limit {window.rpm}, "
            f"Used {window.requests_in_window}, Requested 1. Please try again in {wait}."
        )
    return _error(429, message, "rate_limit_exceeded", verdict.limited_by or "requests", headers)


async def _sleep(seconds: float) -> None:
    # Zero latency must not yield to the loop: at thousands of requests/s it adds up.
    if seconds > 0:
        await asyncio.sleep(seconds)


async def stats_handler(request: web.Request) -> web.Response:
    """``GET /mock/stats[?detail=1]``: the counters as JSON."""
    state = request.app[STATE]
    detail = request.query.get("detail", "") in ("1", "true", "yes")
    data = state.stats.as_dict(
        detail=detail, peak_requests=state.window.peak_requests, peak_tokens=state.window.peak_tokens
    )
    data["options"] = state.options.public()
    return _respond(200, orjson.dumps(data), {})


async def reset_handler(request: web.Request) -> web.Response:
    """``POST /mock/reset``: forget counters, fail_first tries and the rate-limit windows."""
    request.app[STATE].reset()
    return _respond(200, b'{"reset":true}', {})


async def health_handler(request: web.Request) -> web.Response:
    return web.Response(body=b"ok", headers={"Content-Type": "text/plain"})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only installed with ``verbose``: one log line per request."""
    started = time.monotonic()
    status = _CRASHED
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = _CANCELLED
        raise
    finally:
        elapsed_ms = (time.monotonic() - started) * 1000
        log.info("%s %s -> %d in %.1f ms", request.method, request.path_qs, status, elapsed_ms)


def create_app(options: MockOptions | None = None, **overrides: Any) -> web.Application:
    """The mock provider as an aiohttp app: ``create_app(MockOptions(rpm=3))`` or ``create_app(rpm=3)``."""
    options = replace(options or MockOptions(), **overrides)
    # Big bodies are legitimate (long prompts, images as data URLs); aiohttp's default is 1 MiB.
    app = web.Application(client_max_size=64 * 1024 * 1024)
    if options.verbose:
        app.middlewares.append(_log_requests)
    app[STATE] = MockState(options)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_get("/mock/stats", stats_handler)
    app.router.add_post("/mock/reset", reset_handler)
    app.router.add_get("/health", health_handler)
    return app
