"""A lean HTTP/1.1 load generator for the benchmarks: keep-alive connections sending prebuilt
POSTs over asyncio streams.

httpx spends about a millisecond of CPU per request; on a 2-core machine shared with the
server under test, that CPU would be taken from the server and cap what can be measured.
This client spends a few tens of microseconds: it only writes bytes and reads the status
line, the headers and a ``Content-Length`` body.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Callable
from urllib.parse import urlsplit


def post_bytes(host: str, path: str, headers: dict[str, str], body: dict) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
             f"Content-Length: {len(payload)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def hammer(url: str, headers: dict[str, str], body_for: Callable[[int], dict], *, clients: int,
                 seconds: float) -> dict:
    """``clients`` connections, each sending one request after another for ``seconds``;
    ``body_for(i)`` gives the i-th request's JSON body. Returns counts, rate and latencies."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    failures = 0
    counter = 0
    stop_at = time.monotonic() + seconds

    async def connection() -> None:
        nonlocal failures, counter
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < stop_at:
                counter += 1
                request = post_bytes(f"{host}:{port}", parts.path, headers, body_for(counter))
                start = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                if status == 200:
                    latencies.append((time.perf_counter() - start) * 1000)
                else:
                    failures += 1
        finally:
            writer.close()

    start = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(clients)))
    wall = time.monotonic() - start
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "completed": len(latencies),
        "failed": failures,
        "requests_per_s": round(len(latencies) / wall, 1),
        "latency_ms_p50": round(statistics.median(ordered), 2) if ordered else None,
        "latency_ms_p95": round(ordered[int(0.95 * (len(ordered) - 1))], 2) if ordered else None,
    }
