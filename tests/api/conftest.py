"""A real ``llm-dispatch serve`` per test module, driven with the official openai SDK.

``embedded_api`` serves SQLite with the jobs run in the server process (the built-in mock
provider answers "Mock reply to: <prompt>"). The admin key comes from the environment, as
``dispatcher_settings.api.admin_key: os.environ/NAME`` says; team keys are made through the
client API, as ``llm-dispatch keys create`` does.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.api.server import ApiServer
from tests.conftest import FAST_WORKER, cli_env

ADMIN_ENV = "LLMD_TEST_ADMIN_KEY"
# Small enough that a 413 is cheap to provoke; every other upload in tests/api is far below.
TEST_MAX_BODY_BYTES = 256 * 1024
FINAL_STATUSES = ("completed", "failed", "expired", "cancelled", "budget_exceeded")


def write_api_config(
    folder: Path,
    *,
    database_url: str,
    deployments: list[tuple[str, dict]] | None = None,
    settings: dict | None = None,
    worker: dict | None = None,
) -> Path:
    """A config with two mock groups (``chat`` and ``other``) unless told otherwise."""
    mock = {"model": "mock/echo", "mock_latency_ms": 0}
    document = {
        "model_list": [
            {"model_name": group, "litellm_params": params}
            for group, params in (deployments or [("chat", mock), ("other", mock)])
        ],
        "router_settings": {"num_retries": 1, "retry_after": 0},
        "dispatcher_settings": {
            "database_url": database_url,
            "default_model": "chat",
            "worker": {**FAST_WORKER, **(worker or {})},
            "api": {"admin_key": f"os.environ/{ADMIN_ENV}", "max_body_bytes": TEST_MAX_BODY_BYTES},
            **(settings or {}),
        },
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@dataclass
class Api:
    """A running server, its config, and ways to reach it."""

    server: ApiServer
    config: Path
    admin_key: str
    _clients: list = field(default_factory=list)

    def sdk(self, key: str | None = None, **options: Any):
        """An OpenAI SDK client for this server (the admin key unless ``key``); no retries, so
        every error answer raises at once."""
        options = {"max_retries": 0, "timeout": 60, **options}
        return openai.OpenAI(base_url=self.server.base_url, api_key=key or self.admin_key, **options)

    def library(self):
        """The client API on the same config and database (for keys, as the CLI makes them)."""
        from dispatcher import Client

        client = Client(self.config)
        self._clients.append(client)
        return client

    def make_key(self, prefix: str = "team", **limits: Any) -> str:
        """A new API key's secret; ``limits`` as for ``Client.create_key``."""
        _key, secret = self.library().create_key(f"{prefix}-{uuid.uuid4().hex[:8]}", **limits)
        return secret

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.server.stop()


def start_api(config: Path, *extra: str) -> Api:
    admin_key = "llmd-admin-" + secrets.token_urlsafe(16)
    server = ApiServer(config, *extra, env=cli_env(**{ADMIN_ENV: admin_key}))
    return Api(server, config, admin_key)


@pytest.fixture(scope="module")
def embedded_api(tmp_path_factory):
    """One embedded server (SQLite, jobs run in the server) for a test module."""
    folder = tmp_path_factory.mktemp("api")
    config = write_api_config(folder, database_url=f"sqlite:///{folder / 'api.db'}", worker={"concurrency": 4})
    api = start_api(config)
    yield api
    api.close()


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in lines)


def batch_lines(count: int, *, prefix: str = "req", model: str | None = "chat", **body: Any) -> list[dict]:
    """OpenAI batch lines with unique prompts."""
    lines = []
    for i in range(count):
        request = {"messages": [{"role": "user", "content": f"{prefix} prompt {i}"}], "max_tokens": 16, **body}
        if model:
            request["model"] = model
        lines.append({"custom_id": f"{prefix}-{i}", "method": "POST", "url": "/v1/chat/completions",
                      "body": request})
    return lines


def upload(sdk, lines: list[Any], filename: str = "input.jsonl"):
    return sdk.files.create(file=(filename, jsonl(lines), "application/jsonl"), purpose="batch")


def wait_for_batch(sdk, batch_id: str, timeout: float = 60):
    """Poll like an SDK user until the batch has ended."""
    deadline = time.monotonic() + timeout
    while True:
        batch = sdk.batches.retrieve(batch_id)
        if batch.status in FINAL_STATUSES:
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.status} after {timeout:g}s"
        time.sleep(0.1)


def read_lines(sdk, file_id: str) -> list[dict]:
    return [json.loads(line) for line in sdk.files.content(file_id).content.splitlines()]
