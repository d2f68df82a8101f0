"""Running the API under uvicorn: ``llm-dispatch serve``.

Embedded (no ``redis_url``): one process serves the API and runs the worker engine in-process
(``Client.start_worker``), so ``llm-dispatch serve`` alone is a whole system on one machine.
Distributed: the API only stores and reads; worker processes run the jobs. Then
``--workers N`` runs N API processes on one port (uvicorn's supervisor); each builds its own
client from the same config, passed to it in the environment. Embedded mode runs one process:
two in-process engines would each keep their own rate-limit state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from typing import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI

from dispatcher.api.app import create_app
from dispatcher.client.client import Client
from dispatcher.config.schema import DispatcherConfig
from dispatcher.config.secrets import MissingSecretError
from dispatcher.errors import ConfigError, UsageError

log = logging.getLogger("dispatcher.api")

# How `serve --workers N` tells its API processes what to build (they start as fresh
# interpreters): the config path and logging options, as JSON.
CHILD_ENV = "LLM_DISPATCH_SERVE_PROCESS"


def admin_secret(config: DispatcherConfig) -> str | None:
    """The admin key's value, read from the environment now (None: no admin key). It is
    ``dispatcher_settings.api.admin_key``, else LiteLLM's ``general_settings.master_key``."""
    secret = config.admin_key()
    if secret is None:
        return None
    try:
        return secret.resolve()
    except MissingSecretError as exc:
        raise ConfigError(f"{secret.where}: {exc}") from None


def build_app(client: Client, *, close_client: bool = False) -> FastAPI:
    """The app for ``client`` with the config's admin key and body limit."""
    api = client.settings.api
    app = create_app(client, admin_key=admin_secret(client.config), max_body_bytes=api.max_body_bytes)
    if close_client:
        @contextlib.asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            yield
            client.close()

        app.router.lifespan_context = lifespan
    return app


def serve(
    client: Client,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
    access_log: bool = False,
    log_format: str = "text",
) -> None:
    """Serve until SIGINT/SIGTERM; in embedded mode also run the jobs in this process."""
    api = client.settings.api
    host = host or api.host
    port = api.port if port is None else port
    options = dict(host=host, port=port, log_config=None, access_log=access_log, server_header=False)
    client.check_services()
    if workers > 1:
        if client.embedded:
            raise UsageError(
                "--workers above 1 needs redis_url (a fleet): in embedded mode one process serves the "
                "API and runs the jobs. Set redis_url and start `llm-dispatch worker`, or serve one process"
            )
        admin_secret(client.config)  # a missing variable fails here, once, not in every process
        os.environ[CHILD_ENV] = json.dumps({
            "config": str(client.config_path) if client.config_path else None,
            "log_format": log_format,
        })
        _say_serving(client, host, port, workers)
        uvicorn.run("dispatcher.api.server:app_for_process", factory=True, workers=workers, **options)
        return
    app = build_app(client)
    node = client.start_worker() if client.embedded else None
    _say_serving(client, host, port, workers)
    try:
        with _stop_signals_end_serving():
            uvicorn.run(app, **options)
    finally:
        if node is not None:
            node.stop(client.settings.worker.shutdown_grace)


@contextlib.contextmanager
def _stop_signals_end_serving() -> Iterator[None]:
    """uvicorn shuts down on SIGINT/SIGTERM, then hands the signal back to the handler that was
    there before it. Here that handler only notes it, so the embedded worker is then stopped
    gracefully (calls in flight finish) instead of the process dying at once."""
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in stops}
    for number in stops:
        signal.signal(number, lambda _signum, _frame: None)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def app_for_process() -> FastAPI:
    """The app of one of ``serve --workers N``'s processes (uvicorn calls this in each)."""
    from dispatcher.logs import setup_logging

    spec = json.loads(os.environ.get(CHILD_ENV) or "{}")
    setup_logging(1, spec.get("log_format") or "text")
    return build_app(Client(spec.get("config")), close_client=True)


def _say_serving(client: Client, host: str, port: int, workers: int) -> None:
    mode = "embedded: jobs run in this process" if client.embedded else "jobs run in `llm-dispatch worker` processes"
    log.info("serving the API on http://%s:%d/v1 (%d process(es); %s)", host, port, workers, mode)
    admin_key = client.config.admin_key()
    if admin_key is None:
        log.warning("no admin key (dispatcher_settings.api.admin_key, or LiteLLM's general_settings.master_key): "
                    "only keys made by `llm-dispatch keys create` open the API")
    else:
        log.info("admin key: %s", admin_key.where)  # where it is configured, never its value
