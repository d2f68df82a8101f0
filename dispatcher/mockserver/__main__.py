"""``python -m dispatcher.mockserver``: run the mock provider until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from dispatcher.mockserver.app import MockOptions, create_app

log = logging.getLogger("dispatcher.mockserver")

# On SIGTERM, calls in flight get this long to finish before they are cancelled: long enough
# for ordinary latencies, short enough that hung calls (--hang-s 3600) do not stall the exit.
SHUTDOWN_GRACE_S = 1.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dispatcher.mockserver",
        description="Mock LLM provider (OpenAI, Azure OpenAI and Anthropic APIs) for tests and benchmarks.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=0, help="0 (default) picks a free port")
    add("--port-file", help="write the bound port here once listening (atomically)")
    add("--latency-ms", type=float, default=0.0, help="added before each admitted answer")
    add("--jitter-ms", type=float, default=0.0, help="latency is uniform in latency +- jitter")
    add("--api-key", help="require this key (Bearer; Azure api-key; Anthropic x-api-key), 401 otherwise")
    add("--rpm", type=int, help="requests admitted per sliding window")
    add("--tpm", type=int, help="tokens (prompt + max_tokens) admitted per sliding window")
    add("--itpm", type=int, help="input tokens admitted per sliding window (cache reads excluded)")
    add("--otpm", type=int, help="output tokens per sliding window (max_tokens while in flight)")
    add("--window-s", type=float, default=60.0, help="length of the sliding window (default 60)")
    add("--error-rate", type=float, default=0.0, help="fraction of admitted requests answered 500")
    add("--overload-rate", type=float, default=0.0,
        help="fraction of admitted requests answered overloaded (Anthropic 529, OpenAI/Azure 503)")
    add("--hang-rate", type=float, default=0.0, help="fraction of admitted requests that hang")
    add("--hang-s", type=float, default=3600.0, help="how long a hang lasts (default 3600)")
    add("--seed", type=int, help="seed of the error, overload, hang and jitter draws")
    add("--verbose", action="store_true", help="log every request")
    add("--prompt-token-scale", type=float, default=1.0,
        help="bill prompts at this multiple of the dispatcher's estimate (another tokenizer)")
    add("--batch-delay-s", type=float, default=2.0, help="time a batch takes to end (default 2)")
    add("--batch-line-error-rate", type=float, default=0.0,
        help="fraction of batch lines that fail (500 or 429; Anthropic: errored)")
    add("--batch-expire", action="store_true", help="batches expire after the delay with half their lines done")
    add("--batch-max-lines", type=int, help="lines per batch (default: OpenAI 50,000, Anthropic 100,000)")
    add("--batch-max-bytes", type=int, help="bytes per batch (default: OpenAI 200 MB, Anthropic 256 MB)")
    add("--upload-reply-delay-s", type=float, default=0.0,
        help="answer a file upload this long after storing it (a caller killed meanwhile never learns its id)")
    add("--create-reply-delay-s", type=float, default=0.0,
        help="answer a batch creation this long after creating it (OpenAI and Anthropic)")
    return parser


def parse_options(argv: list[str] | None = None) -> MockOptions:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return MockOptions(**vars(args))
    except ValueError as exc:
        parser.error(str(exc))
        raise  # not reached: parser.error exits


def raise_open_files_limit() -> None:
    """Thousands of concurrent connections need as many descriptors; use the hard limit."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def write_port_file(path: str, port: int) -> None:
    """Write then rename, so a reader never sees an empty or half-written file."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(str(port))
    os.replace(tmp, target)


async def serve(options: MockOptions) -> None:
    runner = web.AppRunner(
        create_app(options),
        access_log=None,  # per-request logging costs; --verbose installs a middleware instead
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE_S,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, options.host, options.port, backlog=4096)
        await site.start()
        port = runner.addresses[0][1]
        if options.port_file:
            write_port_file(options.port_file, port)
        log.info("listening on http://%s:%d", options.host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    options = parse_options(argv)
    logging.basicConfig(
        level=logging.INFO if options.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    raise_open_files_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(options))
    else:
        uvloop.run(serve(options))


if __name__ == "__main__":
    main()
    # Everything is closed by now. Skip the interpreter's teardown of the heavy modules the
    # `dispatcher` package imports (~0.2 s): tests start and stop many of these servers.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
