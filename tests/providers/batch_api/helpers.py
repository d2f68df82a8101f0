"""What the batch API tests share: deployments at a mock provider, parts written to files, and
a batch driven from lines to results."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson

from dispatcher.config.loader import parse_config
from dispatcher.deployments import Deployment, build_deployments
from dispatcher.engine.execution import request_body
from dispatcher.providers.batch_api import BatchApi, LineResult, RemoteBatch, RemoteStatus

DELAY_S = 0.3
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"


def run_async(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """An async test run to its end on a fresh event loop (fixtures are passed through)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def deployment(model: str, api_base: str, api_key: str | None = "sk-batch-test-0123456789",
               **params: Any) -> Deployment:
    """A deployment of ``model`` at ``api_base`` as the config builds it (no key if None)."""
    keys = {"api_key": api_key} if api_key is not None else {}
    config = parse_config({"model_list": [{"model_name": "group", "litellm_params": {
        "model": model, "api_base": api_base, **keys, **params}}]})
    return build_deployments(config).by_id["group#0"]


def chat_job(index: int, text: str | None = None, **fields: Any) -> str:
    """A stored job body (no model), as the engine keeps it."""
    content = text if text is not None else f"question {index}"
    return orjson.dumps({"messages": [{"role": "user", "content": content}], **fields}).decode()


def write_part(api: BatchApi, target: Deployment, folder: Path, jobs: dict[str, str],
               endpoint: str = CHAT, name: str = "part-1") -> Path:
    """Encode ``custom_id -> stored body`` as the engine would and write the part's file."""
    path = folder / f"{name}.jsonl"
    lines = [api.encode_line(custom_id, request_body(body, target), endpoint) for custom_id, body in jobs.items()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


async def wait_until_ended(api: BatchApi, remote_id: str, timeout: float = 15.0) -> RemoteBatch:
    deadline = time.monotonic() + timeout
    while True:
        remote = await api.retrieve(remote_id)
        if remote.status != RemoteStatus.RUNNING or time.monotonic() > deadline:
            return remote
        await asyncio.sleep(0.05)


async def results_by_id(api: BatchApi, remote: RemoteBatch) -> dict[str, LineResult]:
    found: dict[str, LineResult] = {}
    async for line in api.results(remote):
        assert line.custom_id not in found
        found[line.custom_id] = line
    return found


async def run_batch(api: BatchApi, path: Path, endpoint: str = CHAT, name: str = "part-1"
                    ) -> tuple[RemoteBatch, dict[str, LineResult]]:
    """Upload, create, wait, read: one part's whole round trip."""
    file_id = await api.upload(name, path)
    created = await api.create(name, file_id, path, endpoint)
    remote = await wait_until_ended(api, created.id)
    assert remote.status == RemoteStatus.ENDED, remote
    return remote, await results_by_id(api, remote)
