"""One worker process: ``python -m workers.process`` (started by ``llm-dispatch worker``).

The application around the library: the client builds everything from the config (backends,
database) and its ``start_worker`` runs the dramatiq consumer and the engine; this module adds
signals, the metrics server and the exit code. It stops gracefully on SIGTERM/SIGINT: no new
jobs, calls in flight get ``shutdown_grace`` seconds, unfinished jobs go back to the queue. A
later SIGINT abandons the calls in flight (see ``workers.signals`` for why a repeated SIGTERM
does not).
"""

from __future__ import annotations

import argparse
import logging
import sys

from workers.signals import StopSignals

log = logging.getLogger("workers.process")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers.process")
    parser.add_argument("--config")
    parser.add_argument("--worker-id")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--groups", help="comma-separated model groups")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument("--metrics-host", help="listen address of the metrics server")
    parser.add_argument("--verbose", type=int, default=1)
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    signals = StopSignals()
    signals.install()
    # Imported after the handlers are in place: a Ctrl-C while they load must not be a traceback.
    from dispatcher.client import Client
    from dispatcher.errors import DispatcherError
    from dispatcher.logs import setup_logging

    args = parse_args(argv)
    setup_logging(args.verbose, args.log_format)
    try:
        client = Client(args.config)
        client.check_services()
        metrics = None
        port = args.metrics_port
        if port is not None:
            from dispatcher.metrics import Metrics

            host = args.metrics_host or client.settings.worker.metrics_host
            metrics = Metrics()
            try:
                metrics.serve(port, host)
            except OSError as exc:
                log.error("cannot serve metrics on %s port %d: %s", host, port, exc)
                return 2
            log.info("Prometheus metrics on http://%s:%d/metrics", host, port)

        if signals.stop_requested:
            log.info("stopped before the worker started")
            client.close()
            return 0
        node = client.start_worker(
            worker_id=args.worker_id,
            concurrency=args.concurrency,
            groups=args.groups.split(",") if args.groups else None,
            metrics=metrics,
        )
    except DispatcherError as exc:
        log.error("%s", exc)
        return exc.exit_code

    signals.attach(node)  # a signal that came while the node started is delivered now
    log.info(
        "worker %s serving %s with %d calls in flight at most",
        node.worker_id, ", ".join(node.engine.groups), node.engine.concurrency,
    )
    # A signal interrupts the wait (its handler asks the engine to stop, which ends the
    # wait): the timeout is only a backstop, long so that an idle worker's main thread sleeps.
    while not node.wait(timeout=5.0):
        pass
    node.close()
    stats = node.engine.stats
    log.info(
        "worker %s stopped: %d jobs claimed, %d finished, %d requeued, peak %d in flight, "
        "%d rebooked, %d moved ahead of less urgent calls",
        node.worker_id, stats.claimed, stats.finished, stats.requeued, stats.max_in_flight,
        stats.rebooked, stats.moved_forward,
    )
    client.close()
    return 1 if node.error is not None else 0


if __name__ == "__main__":
    sys.exit(main())
