"""``python -m dispatcher.mockserver``: run the mock provider until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from dispatcher.mockserver.app import MockOptions, create_app


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dispatcher.mockserver",
        description="OpenAI-compatible mock LLM provider for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="latency is uniform in +-jitter")
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (401 otherwise)")
    parser.add_argument("--rpm", type=int, help="requests admitted per window")
    parser.add_argument("--tpm", type=int, help="tokens (prompt + max_tokens) admitted per window")
    parser.add_argument("--window-s", type=float, default=60.0, help="length of the sliding window")
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 500")
    parser.add_argument("--hang-rate", type=float, default=0.0, help="fraction that hang --hang-s")
    parser.add_argument("--hang-s", type=float, default=3600.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args()


async def serve(args: argparse.Namespace) -> None:
    options = MockOptions(
        latency_ms=args.latency_ms, jitter_ms=args.jitter_ms, api_key=args.api_key,
        rpm=args.rpm, tpm=args.tpm, window_s=args.window_s, error_rate=args.error_rate,
        hang_rate=args.hang_rate, hang_s=args.hang_s, seed=args.seed, verbose=args.verbose,
    )
    runner = web.AppRunner(create_app(options), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    if args.port_file:
        tmp = Path(args.port_file).with_suffix(".tmp")
        tmp.write_text(str(port))
        os.replace(tmp, args.port_file)
    logging.getLogger("dispatcher.mockserver").info("listening on http://%s:%d", args.host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        import uvloop

        uvloop.run(serve(args))
    except ImportError:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
