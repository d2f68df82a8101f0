"""The HTTP API application: OpenAI's Files, Batches, Chat Completions and Models endpoints
over a ``Client``, as the official openai SDK calls them.

``create_app`` wires the routes, the error handlers, the body-size limit and the metrics around
one client; ``server.py`` runs it under uvicorn. The app keeps no state of its own beyond what
the client reaches (SQL, and Redis in a fleet), so any number of replicas can serve one
database behind a load balancer.

    module              job
    auth.py             Bearer key -> Caller (admin or an API key's owner), 401
    errors.py           OpenAI-shaped errors; every failure mapped to its status once
    strict_json.py      400 for NaN, Infinity or an out-of-range number in a JSON body
    body_limit.py       413 for bodies over api.max_body_bytes
    files.py            /v1/files (uploads.py: the multipart form; result_files.py: output files)
    batches.py          /v1/batches (batch_input.py: key limits; refused_batch.py: bad files)
    chat.py             /v1/chat/completions through the queue (completion_errors.py)
    models.py           /v1/models
    health.py           /health, /ready; metrics.py: /metrics
"""

from __future__ import annotations

import time

from fastapi import Depends, FastAPI

from dispatcher import __version__
from dispatcher.api import batches, chat, files, health, metrics, models
from dispatcher.api.auth import KeyCache
from dispatcher.api.body_limit import BodySizeLimit
from dispatcher.api.errors import ERROR_RESPONSES, install_error_handlers
from dispatcher.api.strict_json import finite_json_numbers
from dispatcher.client.client import Client


def create_app(client: Client, *, admin_key: str | None, max_body_bytes: int) -> FastAPI:
    """The ASGI app serving ``client``. ``admin_key``: the secret that sees everything (None:
    only keys made by ``llm-dispatch keys create`` open the API)."""
    app = FastAPI(
        title="llm-dispatcher",
        version=__version__,
        description="OpenAI-compatible Files, Batches and Chat Completions through the dispatcher's "
        "priority queue and fleet-wide rate limits.",
        dependencies=[Depends(finite_json_numbers)],
    )
    app.state.client = client
    app.state.admin_key = admin_key
    app.state.key_cache = KeyCache()
    app.state.started_at = int(time.time())
    app.state.metrics = metrics.ApiMetrics()
    install_error_handlers(app)
    for module in (files, batches, chat, models, health, metrics):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(metrics.RequestMetrics, metrics=app.state.metrics)  # outermost: counts 413s too
    return app
