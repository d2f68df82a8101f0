"""OpenAI's Files + Batches API as a ``BatchApi`` (and, parameterised, Azure OpenAI's).

Input lines are ``{"custom_id", "method": "POST", "url", "body"}`` with the job's body spliced
in as it is (no re-encoding: 100,000 lines are encoded per part). The input file is uploaded
as ``{name}.jsonl`` and the batch tagged ``metadata.llmd_part = name``, which is how
``find_upload`` and ``find_created`` recognise what an interrupted worker made. Results are
streamed line by line from the output file, then the error file.

Azure speaks the same protocol at other URLs with another credential header and error
shapes: ``azure.py`` builds this class with its ``BatchUrls``, ``auth_header`` and
``map_error`` instead of duplicating it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Collection

import httpx
import orjson

from dispatcher.config.secrets import MissingSecretError, redact, scrub_secrets
from dispatcher.deployments import Deployment
from dispatcher.providers import errors as pe
from dispatcher.providers.base import Usage
from dispatcher.providers.batch_api.base import LineKind, LineResult, RemoteBatch, RemoteStatus, UnsupportedBatchRequest
from dispatcher.providers.batch_api.transfer import BatchHttp
from dispatcher.providers.openai.errors import error_from_response


MAX_LINES = 50_000
MAX_BYTES = 200_000_000  # OpenAI's 200 MB, counted in decimal to stay under it either way
PAGE = 100
CLOCK_SLACK_S = 600.0  # our clock and the provider's may disagree; look this much further back
PART_TAG = "llmd_part"

STATUSES = {
    "validating": RemoteStatus.RUNNING,
    "in_progress": RemoteStatus.RUNNING,
    "finalizing": RemoteStatus.RUNNING,
    "cancelling": RemoteStatus.RUNNING,
    "completed": RemoteStatus.ENDED,
    "expired": RemoteStatus.ENDED,
    "cancelled": RemoteStatus.ENDED,
    "failed": RemoteStatus.FAILED,
}
# A line that never ran: the error file says why, with no response.
NOT_RUN = {"batch_expired": LineKind.EXPIRED, "batch_cancelled": LineKind.CANCELED}
MAX_FAILURES_SHOWN = 5

#: the credential header of one call, read at call time (keys rotate); may raise MissingSecretError
AuthHeader = Callable[[], "tuple[str, str]"]
ErrorMapper = Callable[[int, httpx.Headers, bytes], pe.ProviderError]


@dataclass(frozen=True)
class BatchUrls:
    """Where the Files and Batches routes live: ``{base}/files`` ... with ``query`` added to
    each (Azure's ``api-version``); ``line_url`` maps our endpoint to a line's ``url``."""

    base: str
    query: dict[str, str] = field(default_factory=dict)
    strip_v1: bool = False  # Azure documents /chat/completions where OpenAI has /v1/chat/completions

    def url(self, path: str, **params: str | int | None) -> httpx.URL:
        query = {**self.query, **{k: str(v) for k, v in params.items() if v is not None}}
        return httpx.URL(self.base + path, params=query or None)

    def line_url(self, endpoint: str) -> str:
        if self.strip_v1 and endpoint.startswith("/v1/"):
            return endpoint[3:]
        return endpoint


class OpenAIBatchApi:
    """One deployment's OpenAI (or OpenAI-protocol) batch API; see ``BatchApi``."""

    uploads = True

    def __init__(
        self,
        deployment: Deployment,
        *,
        urls: BatchUrls | None = None,
        auth_header: AuthHeader | None = None,
        map_error: ErrorMapper = error_from_response,
        provider_max_lines: int = MAX_LINES,
        provider_max_bytes: int = MAX_BYTES,
    ):
        self.deployment = deployment
        self.max_lines = min(provider_max_lines, deployment.batch_max_lines or provider_max_lines)
        self.max_bytes = min(provider_max_bytes, deployment.batch_max_bytes or provider_max_bytes)
        self._urls = urls or BatchUrls((deployment.api_base or "").rstrip("/"))
        self._auth_header = auth_header
        self._map_error = map_error
        self._http = BatchHttp(deployment.api_base or self._urls.base, self._headers, map_error)
        self._line_prefixes: dict[str, bytes] = {}

    # -- lines ------------------------------------------------------------------------------

    def encode_line(self, custom_id: str, body: bytes, endpoint: str) -> bytes:
        prefix = self._line_prefixes.get(endpoint)
        if prefix is None:
            prefix = b',"method":"POST","url":' + orjson.dumps(self._urls.line_url(endpoint)) + b',"body":'
            self._line_prefixes[endpoint] = prefix
        body = body.strip()
        if not body.startswith(b"{"):
            raise UnsupportedBatchRequest("the request body is not a JSON object")
        if b"\n" in body or b"\r" in body:  # pretty-printed: a JSONL line must be one line
            try:
                body = orjson.dumps(orjson.loads(body))
            except orjson.JSONDecodeError as exc:
                raise UnsupportedBatchRequest(f"the request body is not JSON: {exc}") from None
        return b'{"custom_id":' + orjson.dumps(custom_id) + prefix + body + b"}"

    # -- files ------------------------------------------------------------------------------

    async def upload(self, name: str, path: Path) -> str | None:
        with path.open("rb") as stream:  # httpx reads it in chunks while sending
            data = await self._http.request(
                "POST", self._urls.url("/files"), long=True,
                data={"purpose": "batch"}, files={"file": (f"{name}.jsonl", stream, "application/jsonl")},
            )
        return _str_field(data, "id")

    async def find_upload(self, name: str, since: float) -> str | None:
        filename = f"{name}.jsonl"
        async for item in self._pages("/files", purpose="batch", order="desc"):
            created = _number(item.get("created_at"))
            if created is not None and created < since - CLOCK_SLACK_S:
                return None
            if item.get("filename") == filename and isinstance(item.get("id"), str):
                return item["id"]
        return None

    async def delete_file(self, file_id: str) -> None:
        try:
            await self._http.request("DELETE", self._urls.url(f"/files/{file_id}"))
        except pe.NotFoundError:
            return

    # -- batches ----------------------------------------------------------------------------

    async def create(self, name: str, input_ref: str | None, path: Path | None, endpoint: str) -> RemoteBatch:
        body = {"input_file_id": input_ref, "endpoint": self._urls.line_url(endpoint),
                "completion_window": "24h", "metadata": {PART_TAG: name}}
        data = await self._http.request("POST", self._urls.url("/batches"), long=True, json=body)
        return remote_batch(data)

    async def find_created(
        self, name: str, input_ref: str | None, lines: int, since: float, known: Collection[str] = (),
    ) -> str | None:
        async for item in self._pages("/batches"):
            created = _number(item.get("created_at"))
            if created is not None and created < since - CLOCK_SLACK_S:
                return None
            metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
            ours = metadata.get(PART_TAG) == name or (input_ref is not None and item.get("input_file_id") == input_ref)
            if ours and isinstance(item.get("id"), str) and item["id"] not in known:
                return item["id"]
        return None

    async def retrieve(self, remote_id: str) -> RemoteBatch:
        return remote_batch(await self._http.request("GET", self._urls.url(f"/batches/{remote_id}")))

    async def cancel(self, remote_id: str) -> RemoteBatch:
        try:
            data = await self._http.request("POST", self._urls.url(f"/batches/{remote_id}/cancel"))
        except pe.BadRequestError:
            # Refused because it already ended (or is ending): that is what a cancel wants.
            remote = await self.retrieve(remote_id)
            if remote.status == RemoteStatus.RUNNING and remote.provider_status != "cancelling":
                raise
            return remote
        return remote_batch(data)

    async def results(self, remote: RemoteBatch) -> AsyncIterator[LineResult]:
        for file_id in (remote.output_ref, remote.error_ref):
            if not file_id:
                continue
            async for line in self._http.stream_lines(self._urls.url(f"/files/{file_id}/content")):
                yield self.line_result(line)

    def line_result(self, line: str | bytes) -> LineResult:
        """One output or error file line as a LineResult."""
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise pe.InvalidResponseError("a batch result line is not JSON") from None
        custom_id = data.get("custom_id") if isinstance(data, dict) else None
        if not isinstance(custom_id, str):
            raise pe.InvalidResponseError("a batch result line has no custom_id")
        response = data.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            return self._answered(custom_id, response)
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        code = _str_or_none(error.get("code"))
        kind = NOT_RUN.get(code or "")
        if kind is not None:
            return LineResult(custom_id, kind)
        return LineResult(custom_id, LineKind.ERRORED, error=line_error(code, _str_or_none(error.get("message"))))

    def _answered(self, custom_id: str, response: dict) -> LineResult:
        status = response["status_code"]
        request_id = _str_or_none(response.get("request_id"))
        body = response.get("body")
        raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
        raw = scrub_secrets(raw)  # a provider may echo the key; the body is stored
        if 200 <= status < 300 and isinstance(body, dict):
            usage = Usage.from_openai(body.get("usage"))
            if usage is not None and body.get("object") == "list":  # embeddings bill input only
                usage.completion_tokens = 0
            return LineResult(custom_id, LineKind.SUCCEEDED, status, raw, usage, request_id=request_id)
        if 200 <= status < 300:
            error: pe.ProviderError = pe.InvalidResponseError(
                f"HTTP {status} with a body that is not a JSON object", status_code=status)
        else:
            headers = httpx.Headers({"x-request-id": request_id} if request_id else {})
            error = self._map_error(status, headers, raw)
        return LineResult(custom_id, LineKind.ERRORED, status, error=error, request_id=request_id)

    # -- plumbing ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "llm-dispatcher/0.1"}
        try:
            if self._auth_header is not None:
                name, value = self._auth_header()
                headers[name] = value
            elif self.deployment.api_key is not None:
                headers["Authorization"] = "Bearer " + self.deployment.api_key.resolve()
            for name, value in self.deployment.extra_headers.items():
                headers[name] = value.resolve()
        except MissingSecretError as exc:
            raise pe.MissingCredentialsError(str(exc)) from None
        return headers

    def _pages(self, path: str, **params: str) -> AsyncIterator[dict]:
        """Every item of a cursor-paged list (newest first), page by page."""
        return self._http.pages(lambda after: self._urls.url(path, limit=PAGE, after=after, **params))

    async def aclose(self) -> None:
        await self._http.aclose()


def remote_batch(data: dict) -> RemoteBatch:
    """A Batch object as a RemoteBatch."""
    batch_id = data.get("id")
    if not isinstance(batch_id, str):
        raise pe.InvalidResponseError("the provider's answer is not a batch (no id)")
    provider_status = str(data.get("status") or "")
    status = STATUSES.get(provider_status, RemoteStatus.RUNNING)  # a new word: look again later
    return RemoteBatch(
        id=batch_id,
        status=status,
        provider_status=provider_status,
        output_ref=_str_or_none(data.get("output_file_id")),
        error_ref=_str_or_none(data.get("error_file_id")),
        message=_failure(data) if status == RemoteStatus.FAILED else None,
        created_at=_number(data.get("created_at")),
    )


def _failure(data: dict) -> str:
    """Why a batch failed, from ``errors.data`` (the first few lines named)."""
    errors = data.get("errors")
    items = errors.get("data") if isinstance(errors, dict) else None
    said = []
    for item in (items if isinstance(items, list) else [])[:MAX_FAILURES_SHOWN]:
        if not isinstance(item, dict):
            continue
        where = f"line {item['line']}: " if item.get("line") is not None else ""
        said.append(f"{where}{item.get('message') or item.get('code') or 'invalid'}")
    more = len(items) - MAX_FAILURES_SHOWN if isinstance(items, list) and len(items) > MAX_FAILURES_SHOWN else 0
    text = "; ".join(said) + (f" (and {more} more)" if more else "") if said else "the batch failed validation"
    return redact(text) or ""


# An error-file line without a response: a status that fits its code, for the usual mapping.
_CODE_STATUSES = (
    ("rate_limit", 429), ("quota", 429), ("timeout", 408), ("not_found", 404),
    ("auth", 401), ("permission", 403), ("server", 500), ("internal", 500),
    ("invalid", 400), ("bad_request", 400), ("too_large", 400), ("context", 400), ("content", 400),
)


def line_error(code: str | None, message: str | None) -> pe.ProviderError:
    """The ProviderError for an error-file line that has a code and message but no response."""
    lowered = (code or "").lower()
    status = next((status for hint, status in _CODE_STATUSES if hint in lowered), None)
    if status is None:
        return pe.ProviderError(redact(f"{code or 'error'}: {message or 'the line failed'}") or "")
    body = orjson.dumps({"error": {"code": code, "message": message or code}})
    return error_from_response(status, httpx.Headers(), body)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _str_field(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise pe.InvalidResponseError(f"the provider's answer has no '{key}'")
    return value


__all__ = ["BatchUrls", "OpenAIBatchApi", "line_error", "remote_batch"]
