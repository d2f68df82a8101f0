"""Anthropic's Message Batches API as a ``BatchApi``.

There is no upload: each line is ``{"custom_id", "params"}`` with the job's OpenAI body
translated as the realtime adapter translates it (``request.py``), and ``create`` posts
``{"requests": [lines]}`` streamed from the part's file. Results (JSONL at ``results_url``)
come back as OpenAI ``chat.completion`` bodies (``response.py``), errors in our taxonomy
(``anthropic/errors.py``). Anthropic keeps no tag on a batch, so ``find_created`` recognises
ours by its request count and creation time, leaving out batches we already own.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Collection

import httpx
import orjson

from dispatcher.config.secrets import MissingSecretError, scrub_secrets
from dispatcher.deployments import Deployment
from dispatcher.providers import errors as pe
from dispatcher.providers.anthropic.adapter import ANTHROPIC_VERSION, messages_url
from dispatcher.providers.anthropic.errors import error_from_response
from dispatcher.providers.anthropic.messages import UnsupportedRequest
from dispatcher.providers.anthropic.request import JSON_TOOL_NAME, messages_body
from dispatcher.providers.anthropic.response import NotAMessage, chat_completion
from dispatcher.providers.base import Usage
from dispatcher.providers.batch_api.base import LineKind, LineResult, RemoteBatch, RemoteStatus, UnsupportedBatchRequest
from dispatcher.providers.batch_api.transfer import BatchHttp

log = logging.getLogger(__name__)

MAX_LINES = 100_000
MAX_BYTES = 256_000_000  # Anthropic's 256 MB, counted in decimal to stay under it either way
PAGE = 100
CLOCK_SLACK_S = 600.0
CHUNK_BYTES = 1 << 20  # lines gathered before each write of the streamed create body
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what Anthropic accepts

STATUSES = {"in_progress": RemoteStatus.RUNNING, "canceling": RemoteStatus.RUNNING, "ended": RemoteStatus.ENDED}
NOT_RUN = {"canceled": LineKind.CANCELED, "expired": LineKind.EXPIRED}
# error.error.type -> the status Anthropic answers it with, for the realtime mapping
ERROR_STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class AnthropicBatchApi:
    """One deployment's Message Batches; see ``BatchApi``."""

    uploads = False  # the requests go in the create call

    def __init__(self, deployment: Deployment):
        self.deployment = deployment
        self.max_lines = min(MAX_LINES, deployment.batch_max_lines or MAX_LINES)
        self.max_bytes = min(MAX_BYTES, deployment.batch_max_bytes or MAX_BYTES)
        self._batches_url = messages_url(deployment.api_base or "") + "/batches"
        self._http = BatchHttp(deployment.api_base or "", self._headers, error_from_response)

    def encode_line(self, custom_id: str, body: bytes, endpoint: str) -> bytes:
        if not endpoint.endswith("/chat/completions"):
            raise UnsupportedBatchRequest(f"Anthropic has no batch endpoint for {endpoint}")
        if not CUSTOM_ID.match(custom_id):
            raise UnsupportedBatchRequest(f"custom_id {custom_id!r} is not 1-64 letters, digits, '_' or '-'")
        try:
            params = messages_body(orjson.loads(body), self.deployment.default_max_tokens)
        except orjson.JSONDecodeError as exc:
            raise UnsupportedBatchRequest(f"the request body is not JSON: {exc}") from None
        except (UnsupportedRequest, AttributeError) as exc:  # AttributeError: not an object
            raise UnsupportedBatchRequest(f"cannot be sent to Anthropic: {exc}") from None
        return orjson.dumps({"custom_id": custom_id, "params": params})

    async def upload(self, name: str, path: Path) -> str | None:
        return None  # the requests go in the create call

    async def find_upload(self, name: str, since: float) -> str | None:
        return None

    async def delete_file(self, file_id: str) -> None:
        return None  # nothing is uploaded

    async def create(self, name: str, input_ref: str | None, path: Path | None, endpoint: str) -> RemoteBatch:
        if path is None:
            raise ValueError("an Anthropic batch is created from the part's file: path is required")
        data = await self._http.request(
            "POST", self._batches_url, long=True, content=_requests_body(path),
            headers={"Content-Type": "application/json"},
        )
        return remote_batch(data)

    async def find_created(
        self, name: str, input_ref: str | None, lines: int, since: float, known: Collection[str] = (),
    ) -> str | None:
        matches: list[str] = []  # newest first
        async for item in self._pages():
            created = _unix(item.get("created_at"))
            if created is not None and created < since - CLOCK_SLACK_S:
                break
            batch_id = item.get("id")
            if isinstance(batch_id, str) and batch_id not in known and _request_total(item) == lines:
                matches.append(batch_id)
        if len(matches) > 1:
            log.warning("%d Anthropic batches of %d requests since our part %s was made; taking the "
                        "oldest (%s)", len(matches), lines, name, matches[-1])
        return matches[-1] if matches else None

    async def retrieve(self, remote_id: str) -> RemoteBatch:
        return remote_batch(await self._http.request("GET", f"{self._batches_url}/{remote_id}"))

    async def cancel(self, remote_id: str) -> RemoteBatch:
        try:
            return remote_batch(await self._http.request("POST", f"{self._batches_url}/{remote_id}/cancel"))
        except pe.BadRequestError:
            # Refused because it has ended: that is what a cancel wants.
            remote = await self.retrieve(remote_id)
            if remote.status == RemoteStatus.RUNNING:
                raise
            return remote

    async def results(self, remote: RemoteBatch) -> AsyncIterator[LineResult]:
        if not remote.output_ref:
            raise pe.InvalidResponseError(f"Anthropic batch {remote.id} has no results_url yet")
        async for line in self._http.stream_lines(self._results_url(remote.output_ref)):
            yield line_result(line)

    def _results_url(self, results_url: str) -> httpx.URL:
        """``results_url`` at our api_base's origin: the key is only ever sent there (a gateway
        in between may hand on the provider's own host)."""
        url, base = httpx.URL(results_url), httpx.URL(self._batches_url)
        if (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port):
            return url
        return base.copy_with(raw_path=url.raw_path)

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "llm-dispatcher/0.1", "anthropic-version": ANTHROPIC_VERSION.decode()}
        try:
            if self.deployment.api_key is not None:
                headers["x-api-key"] = self.deployment.api_key.resolve()
            for name, value in self.deployment.extra_headers.items():  # anthropic-beta and the like
                headers[name] = value.resolve()
        except MissingSecretError as exc:
            raise pe.MissingCredentialsError(str(exc)) from None
        return headers

    def _pages(self) -> AsyncIterator[dict]:
        """Every Message Batch, newest first, page by page."""
        return self._http.pages(lambda after: httpx.URL(
            self._batches_url, params={"limit": str(PAGE), **({"after_id": after} if after else {})}))

    async def aclose(self) -> None:
        await self._http.aclose()


async def _requests_body(path: Path) -> AsyncIterator[bytes]:
    """``{"requests":[line,line,...]}`` from the file of lines, a chunk at a time."""
    yield b'{"requests":['
    chunk: list[bytes] = []
    size = 0
    first = True
    with path.open("rb") as lines:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            if not first:
                chunk.append(b",")
            first = False
            chunk.append(line)
            size += len(line) + 1
            if size >= CHUNK_BYTES:
                yield b"".join(chunk)
                chunk, size = [], 0
    chunk.append(b"]}")
    yield b"".join(chunk)


def remote_batch(data: dict) -> RemoteBatch:
    """A Message Batch object as a RemoteBatch."""
    batch_id = data.get("id")
    if not isinstance(batch_id, str):
        raise pe.InvalidResponseError("the provider's answer is not a message batch (no id)")
    provider_status = str(data.get("processing_status") or "")
    status = STATUSES.get(provider_status, RemoteStatus.RUNNING)
    results_url = data.get("results_url")
    return RemoteBatch(
        id=batch_id,
        status=status,
        provider_status=provider_status,
        output_ref=results_url if isinstance(results_url, str) and status == RemoteStatus.ENDED else None,
        created_at=_unix(data.get("created_at")),
    )


def line_result(line: str | bytes) -> LineResult:
    """One line of a batch's results as a LineResult."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise pe.InvalidResponseError("a batch result line is not JSON") from None
    custom_id = data.get("custom_id") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(custom_id, str) or not isinstance(result, dict):
        raise pe.InvalidResponseError("a batch result line has no custom_id or result")
    kind = result.get("type")
    if kind == "succeeded":
        return _succeeded(custom_id, result.get("message"))
    if kind in NOT_RUN:
        return LineResult(custom_id, NOT_RUN[kind])
    if kind == "errored":
        status, error = _error(result.get("error"))
        return LineResult(custom_id, LineKind.ERRORED, status, error=error, request_id=error.request_id)
    return LineResult(custom_id, LineKind.ERRORED,
                      error=pe.InvalidResponseError(f"unknown batch result type {kind!r}"))


def _succeeded(custom_id: str, message: Any) -> LineResult:
    try:
        completion = chat_completion(message, json_tool=_answered_by_json_tool(message))
    except NotAMessage as exc:
        return LineResult(custom_id, LineKind.ERRORED, 200, error=pe.InvalidResponseError(str(exc), status_code=200))
    body = scrub_secrets(orjson.dumps(completion))  # a provider may echo the key; the body is stored
    return LineResult(custom_id, LineKind.SUCCEEDED, 200, body, Usage.from_openai(completion["usage"]),
                      request_id=completion.get("id"))


def _answered_by_json_tool(message: Any) -> bool:
    """Whether the Message calls the tool that stands for response_format (the request is
    not at hand here; only such a request offers a tool by that name)."""
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_use" and block.get("name") == JSON_TOOL_NAME
        for block in content
    )


def _error(error: Any) -> tuple[int, pe.ProviderError]:
    """An errored line's error response (``{"type": "error", "error": {type, message}}``)."""
    inner = error.get("error") if isinstance(error, dict) else None
    if not isinstance(inner, dict) and isinstance(error, dict):
        inner, error = error, {"type": "error", "error": error}  # the bare error object
    error_type = inner.get("type") if isinstance(inner, dict) else None
    status = ERROR_STATUSES.get(error_type if isinstance(error_type, str) else "", 500)
    return status, error_from_response(status, httpx.Headers(), orjson.dumps(error))


def _request_total(item: dict) -> int | None:
    counts = item.get("request_counts")
    if not isinstance(counts, dict):
        return None
    return sum(value for value in counts.values() if isinstance(value, int) and not isinstance(value, bool))


def _unix(value: Any) -> float | None:
    """An RFC 3339 time as Unix seconds."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
