"""What happens to every provider call the mock serves, whichever API (dialect) it speaks.

In order: the dialect checks the key, the URL and the body and plans its answer (a bad
request is answered at once); the rate limits admit it or answer 429; then scripted
``fail_first`` tries, ``--error-rate`` (500), ``--overload-rate`` (Anthropic 529, OpenAI 503)
and ``--hang-rate``; then latency and the planned answer. Every call is counted in the stats,
under its route.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

import orjson
from aiohttp import web

from dispatcher.mockserver.limits import Charge, Decision, RateLimits
from dispatcher.mockserver.state import STATE, MockState
from dispatcher.mockserver.stats import MockStats

JSON = "application/json"
# A status an unexpected exception turns into (aiohttp answers 500), and the one recorded for
# a request whose handler was cancelled (server stopping): nginx's "client closed request".
CRASHED = 500
CANCELLED = 499


def respond(status: int, body: bytes, headers: dict[str, str], content_type: str = JSON) -> web.Response:
    # Content-Type goes in as a plain header: cheaper than aiohttp's content_type parsing.
    headers["Content-Type"] = content_type
    return web.Response(status=status, body=body, headers=headers)


async def read_json_object(request: web.Request) -> dict[str, Any] | None:
    """The request's JSON body if it is an object, else None."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


@dataclass(slots=True)
class Plan:
    """The answer a well-formed call gets if it is admitted, decided before limits and faults."""

    fingerprint: str  # equal prompts, equal fingerprints (duplicates are counted by it)
    model: str
    charge: Charge
    status: int
    body: bytes
    usage: dict[str, int] | None = None  # what is billed (stats' terms); None: nothing
    content_type: str = JSON
    sleep_s: float = 0.0
    fail_first: int = 0  # the first N admitted tries of this prompt answer 500
    on_admit: Callable[[], None] | None = None  # state changes that only admission makes


class Dialect(Protocol):
    """One provider API the mock speaks: its checks and answers, and its error shapes."""

    route: str  # the key of this route's counters in /mock/stats

    def first_headers(self, request_id: str) -> dict[str, str]: ...

    async def plan(self, request: web.Request, state: MockState, headers: dict[str, str]) -> Plan | web.Response: ...

    def limit_headers(self, decision: Decision, limits: RateLimits) -> dict[str, str]: ...

    def rate_limited(
        self, request: web.Request, decision: Decision, plan: Plan, headers: dict[str, str]
    ) -> web.Response: ...

    def server_error(self, headers: dict[str, str], detail: str | None = None) -> web.Response: ...

    def overloaded(self, headers: dict[str, str]) -> web.Response: ...


def handler(dialect: Dialect) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler of one route: count the call, then answer it."""
    route = dialect.route

    async def handle(request: web.Request) -> web.Response:
        state = request.app[STATE]
        stats = state.stats  # report to the stats this request arrived in, even across a reset
        stats.enter(state.since_start(time.monotonic()), route)
        status = CRASHED
        try:
            response = await _answer(state, stats, dialect, request)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = CANCELLED
            raise
        finally:
            stats.leave(status, route)

    return handle


async def _answer(state: MockState, stats: MockStats, dialect: Dialect, request: web.Request) -> web.Response:
    headers = dialect.first_headers(state.request_id())
    plan = await dialect.plan(request, state, headers)
    if not isinstance(plan, Plan):
        return plan
    stats.seen(plan.fingerprint, time.time())
    now = time.monotonic()
    limits = state.limits
    decision = limits.check(now, plan.charge)
    headers.update(dialect.limit_headers(decision, limits))
    if not decision.admitted:
        return dialect.rate_limited(request, decision, plan, headers)
    charge = plan.charge
    stats.admitted(state.since_start(now), charge.tokens, charge.input, charge.output)
    try:
        return await _admitted(state, stats, dialect, plan, headers)
    finally:
        limits.release(decision)


async def _admitted(
    state: MockState, stats: MockStats, dialect: Dialect, plan: Plan, headers: dict[str, str]
) -> web.Response:
    if plan.on_admit is not None:
        plan.on_admit()
    # Scripted and random failures apply to admitted requests only: a provider that limits
    # you does not also fail the request it refused.
    if plan.fail_first:
        state.fail_first[plan.fingerprint] += 1
        tries = state.fail_first[plan.fingerprint]
        if tries <= plan.fail_first:
            await _sleep(state.latency_s())
            return dialect.server_error(headers, f"mock fail_first: try {tries}")
    options = state.options
    rng = state.rng
    if options.error_rate and rng.random() < options.error_rate:
        await _sleep(state.latency_s())
        return dialect.server_error(headers)
    if options.overload_rate and rng.random() < options.overload_rate:
        await _sleep(state.latency_s())
        return dialect.overloaded(headers)
    if options.hang_rate and rng.random() < options.hang_rate:
        # Stays in flight even if the client gives up: aiohttp does not cancel the handler.
        await asyncio.sleep(options.hang_s)

    await _sleep(state.latency_s() + plan.sleep_s)
    if plan.usage is not None:
        stats.completion(plan.fingerprint, plan.usage, dialect.route)
    return respond(plan.status, plan.body, headers, plan.content_type)


async def _sleep(seconds: float) -> None:
    # Zero latency must not yield to the loop: at thousands of requests/s it adds up.
    if seconds > 0:
        await asyncio.sleep(seconds)
