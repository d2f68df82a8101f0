"""Benchmark: CPU per provider call for ways of using httpx (why providers/http.py exists).

    python bench/http_client.py --requests 5000 --concurrency 100

Against the local mock provider (zero latency), in this process, measures CPU milliseconds
per request for: one httpx.AsyncClient with a pool as large as the concurrency (the obvious
way), the same on uvloop, and our EndpointPool (many 2-connection transports, no client layer)
on uvloop. Run it with and without the ``sniffio`` package installed to see its effect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import mock_provider  # noqa: E402
from dispatcher.engine.thread import new_event_loop  # noqa: E402
from dispatcher.providers.http import EndpointPool  # noqa: E402

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}).encode()
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}


async def with_client(base_url: str, requests: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        async def call():
            response = await client.post(base_url + "/chat/completions", content=BODY, headers=HEADERS)
            json.loads(response.content)
        return await _measure(call, requests, concurrency)


async def with_endpoint_pool(base_url: str, requests: int, concurrency: int) -> float:
    pool = EndpointPool(concurrency)
    url = httpx.URL(base_url + "/chat/completions")
    headers = [(b"Host", url.netloc), (b"content-type", b"application/json"), (b"authorization", b"Bearer sk-bench")]

    async def call():
        _, _, data = await pool.send(httpx.Request("POST", url, headers=headers, content=BODY))
        json.loads(data)
    try:
        return await _measure(call, requests, concurrency)
    finally:
        await pool.aclose()


async def _measure(call, requests: int, concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def one():
        async with semaphore:
            await call()
    await asyncio.gather(*(one() for _ in range(min(500, requests))))  # warm the connections
    start = time.process_time()
    await asyncio.gather(*(one() for _ in range(requests)))
    return (time.process_time() - start) * 1000 / requests


def run(loop_factory, coroutine) -> float:
    loop = loop_factory()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    try:
        import sniffio  # noqa: F401
        sniffio_installed = True
    except ImportError:
        sniffio_installed = False
    results: dict[str, list[float]] = {"client_asyncio": [], "client_uvloop": [], "endpoint_pool_uvloop": []}
    with mock_provider() as base_url:
        for _ in range(args.runs):
            n, c = args.requests, args.concurrency
            results["client_asyncio"].append(run(asyncio.new_event_loop, with_client(base_url, n, c)))
            results["client_uvloop"].append(run(new_event_loop, with_client(base_url, n, c)))
            results["endpoint_pool_uvloop"].append(run(new_event_loop, with_endpoint_pool(base_url, n, c)))
    import statistics

    print(json.dumps({
        "sniffio_installed": sniffio_installed,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "cpu_ms_per_request_median": {k: round(statistics.median(v), 3) for k, v in results.items()},
        "runs": {k: [round(x, 3) for x in v] for k, v in results.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
