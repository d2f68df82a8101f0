"""HTTP connections to one provider endpoint, cheap enough for hundreds of calls in flight.

httpcore's pool scans every connection it owns on each request, so one pool of 256
connections costs about 1.5 ms of CPU per request, while many pools of two connections cost
about 0.35 ms (measured in docs/benchmarks.md). ``EndpointPool`` keeps one small httpx
connection pool per "lane" and hands each request the first lane with a free connection.

The lanes are httpcore pools used directly, not through httpx's transport (which wraps each
response in an ``httpx.Response`` and its stream in an exception-mapping iterator), and their
connections run on plain asyncio (``asyncio_network.py``), not anyio. Callers build an
``httpx.Request`` (or, on the chat hot path, hand over its parts: ``send_parts``) and get
httpx's errors and ``httpx.Headers``.
"""

from __future__ import annotations

import collections
import ssl
from functools import lru_cache

import httpcore
import httpx
from httpx._transports.default import map_httpcore_exceptions  # httpcore's errors as httpx's

from dispatcher.providers.asyncio_network import AsyncioBackend
from dispatcher.providers.send_permit import check_send_permit

CONNECTIONS_PER_LANE = 2


@lru_cache(maxsize=1)
def shared_ssl_context() -> ssl.SSLContext:
    # Loading CA certificates takes ~20 ms; do it once per process, not once per transport.
    return ssl.create_default_context()


def core_url(url: httpx.URL) -> httpcore.URL:
    """``url`` as httpcore takes it (callers on the hot path build it once)."""
    return httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)


def timeouts(seconds: float) -> dict:
    """The request extensions that give every phase of a call ``seconds``."""
    return {"timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}}


class EndpointPool:
    """Small connection pools to one origin; each request takes a lane with room."""

    def __init__(self, max_in_flight: int, connections_per_lane: int = CONNECTIONS_PER_LANE):
        lanes = max(1, -(-max_in_flight // connections_per_lane))
        self._lanes = [
            httpcore.AsyncConnectionPool(
                ssl_context=shared_ssl_context(),
                max_connections=connections_per_lane,
                max_keepalive_connections=connections_per_lane,
                keepalive_expiry=30.0,
                retries=0,
                network_backend=AsyncioBackend(),
            )
            for _ in range(lanes)
        ]
        # One entry per free connection; a request pops one and pushes it back when done.
        self._free = collections.deque(
            index for index in range(lanes) for _ in range(connections_per_lane)
        )
        self._overflow = 0

    async def send(self, request: httpx.Request) -> tuple[int, httpx.Headers, bytes]:
        """Send the request; returns status, headers and the whole body. Raises httpx errors,
        or SendWithdrawn (nothing sent) when the caller's send permit no longer holds."""
        return await self.send_parts(
            request.method.encode(), core_url(request.url), request.headers.raw, request.stream, request.extensions,
        )

    async def send_parts(
        self, method: bytes, url: httpcore.URL, headers: list[tuple[bytes, bytes]], content, extensions: dict,
    ) -> tuple[int, httpx.Headers, bytes]:
        """``send`` without an ``httpx.Request`` for the hot path: ``headers`` complete (Host
        and Content-Length included), ``url`` built once per deployment."""
        check_send_permit()  # no await between this and the transport taking the request
        took_free_connection = bool(self._free)
        if took_free_connection:
            lane = self._free.popleft()
        else:  # more callers than connections: queue inside a lane, spread round-robin
            lane = self._overflow % len(self._lanes)
            self._overflow += 1
        core_request = httpcore.Request(method, url, headers=headers, content=content, extensions=extensions)
        try:
            with map_httpcore_exceptions():
                response = await self._lanes[lane].handle_async_request(core_request)
                # Read the raw stream: no Accept-Encoding is sent, so there is usually nothing
                # to decode, and skipping httpx.Response's decoding layers saves CPU per call.
                chunks = []
                try:
                    async for chunk in response.stream:
                        chunks.append(chunk)
                finally:
                    await response.aclose()
            body = b"".join(chunks)
            headers = httpx.Headers(response.headers)
            if headers.get("content-encoding", "identity").lower() != "identity":
                # A server that compresses anyway: let httpx undo it.
                body = httpx.Response(response.status, headers=headers, stream=httpx.ByteStream(body)).read()
            return response.status, headers, body
        finally:
            if took_free_connection:
                self._free.append(lane)

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()
