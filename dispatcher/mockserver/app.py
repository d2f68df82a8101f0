"""The mock provider's aiohttp application: its routes, and the counters' own endpoints.

Each provider route is a ``Dialect`` (``openai_api.py``, ``azure.py``, ``anthropic_api.py``)
run by the same ``pipeline.handler``: keys, rate limits, injected faults and hangs, latency,
and counting what it was sent. The chat replies themselves come from
``dispatcher.providers.mock.replies`` (shared with the in-process ``mock/`` adapter).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from dispatcher.mockserver import anthropic_batches, openai_batches, openai_files
from dispatcher.mockserver.anthropic_api import AnthropicMessages
from dispatcher.mockserver.azure import AzureShape
from dispatcher.mockserver.openai_api import ChatCompletions, Embeddings, OpenAIShape
from dispatcher.mockserver.options import MockOptions
from dispatcher.mockserver.pipeline import CANCELLED, CRASHED, handler, respond
from dispatcher.mockserver.state import STATE, MockState

__all__ = ["MockOptions", "MockState", "STATE", "create_app"]

log = logging.getLogger("dispatcher.mockserver")


async def stats_handler(request: web.Request) -> web.Response:
    """``GET /mock/stats[?detail=1]``: the counters as JSON."""
    state = request.app[STATE]
    detail = request.query.get("detail", "") in ("1", "true", "yes")
    data = state.stats.as_dict(detail=detail, peaks=state.limits.peaks())
    data["options"] = state.options.public()
    return respond(200, orjson.dumps(data), {})


async def reset_handler(request: web.Request) -> web.Response:
    """``POST /mock/reset``: forget counters, fail_first tries, rate-limit windows, the prompt cache."""
    request.app[STATE].reset()
    return respond(200, b'{"reset":true}', {})


async def health_handler(request: web.Request) -> web.Response:
    return web.Response(body=b"ok", headers={"Content-Type": "text/plain"})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _log_requests(request: web.Request, next_handler: Handler) -> web.StreamResponse:
    """Only installed with ``verbose``: one log line per request."""
    started = time.monotonic()
    status = CRASHED
    try:
        response = await next_handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CANCELLED
        raise
    finally:
        elapsed_ms = (time.monotonic() - started) * 1000
        log.info("%s %s -> %d in %.1f ms", request.method, request.path_qs, status, elapsed_ms)


_MAX_BODY = 320 * 1024 * 1024


def create_app(options: MockOptions | None = None, **overrides: Any) -> web.Application:
    """The mock provider as an aiohttp app: ``create_app(MockOptions(rpm=3))`` or ``create_app(rpm=3)``."""
    options = replace(options or MockOptions(), **overrides)
    # Big bodies are legitimate (long prompts, images as data URLs, batch files up to OpenAI's
    # 200 MB and Anthropic's 256 MB, so a bigger one can be refused in the provider's words).
    app = web.Application(client_max_size=_MAX_BODY)
    if options.verbose:
        app.middlewares.append(_log_requests)
    app[STATE] = MockState(options)
    add = app.router.add_post

    openai = OpenAIShape()
    for prefix in ("/v1", ""):  # api_base with or without /v1
        add(f"{prefix}/chat/completions", handler(ChatCompletions(openai)))
        add(f"{prefix}/embeddings", handler(Embeddings(openai)))
        openai_files.add_routes(app, prefix)
        openai_batches.add_routes(app, prefix)
    app[openai_files.FILES] = openai_files.FileStore()
    app[openai_batches.BATCHES] = openai_batches.BatchStore()

    messages = handler(AnthropicMessages())
    add("/v1/messages", messages)
    add("/v1/v1/messages", messages)  # an Anthropic api_base that already ends in /v1
    anthropic_batches.add_routes(app, "/v1")
    anthropic_batches.add_routes(app, "/v1/v1")
    app[anthropic_batches.MESSAGE_BATCHES] = anthropic_batches.MessageBatchStore()

    azure, azure_v1 = AzureShape(), AzureShape(v1=True)
    add("/openai/deployments/{deployment}/chat/completions", handler(ChatCompletions(azure)))
    add("/openai/deployments/{deployment}/embeddings", handler(Embeddings(azure)))
    add("/openai/v1/chat/completions", handler(ChatCompletions(azure_v1)))
    add("/openai/v1/embeddings", handler(Embeddings(azure_v1)))
    # Azure's files and batches: OpenAI's handlers in Azure's dialect, sharing OpenAI's stores;
    # a batch line's url is the operation without /v1 (/chat/completions), as Azure documents.
    for prefix, shape in (("/openai", azure), ("/openai/v1", azure_v1)):
        operations = {"/chat/completions": ChatCompletions(shape), "/embeddings": Embeddings(shape)}
        openai_files.add_routes(app, prefix, shape)
        openai_batches.add_routes(app, prefix, shape, operations)

    app.router.add_get("/mock/stats", stats_handler)
    app.router.add_post("/mock/reset", reset_handler)
    app.router.add_get("/health", health_handler)
    return app
