"""Prometheus metrics of an API process, served at ``/metrics`` (no key needed):

    llmd_api_requests_total{route,method,status}   requests answered, by route template
    llmd_api_request_seconds{route}                time to the end of the answer (histogram)

Routes are labelled by their template (``/v1/batches/{batch_id}``), never by the ids in a
path, so the number of series stays small. Per process: with ``serve --workers N`` each
process counts its own requests.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

router = APIRouter(tags=["health"])


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("llmd_api_requests_total", "HTTP requests answered",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("llmd_api_request_seconds", "Time to the end of the answer", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)


class RequestMetrics:
    """ASGI middleware counting every answer, errors from any layer included."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before answering, the server answers 500

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(no route)"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
