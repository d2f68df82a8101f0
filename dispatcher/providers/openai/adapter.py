"""Chat completions and embeddings against any OpenAI-compatible endpoint.

Every body field is passed through unchanged; only ``model`` is set to the deployment's
provider model. The request goes straight to an httpx transport (no client-level cookies,
redirects or auth hooks), which halves the CPU cost per call.

Providers that speak this protocol with another URL, credential header or error shape (Azure
OpenAI, Gemini's compatible endpoint) reuse this class by passing ``url``, ``auth_header`` and
``map_error``; the defaults are OpenAI's (measured: no added CPU per call). Embeddings go to
``{api_base}/embeddings`` (or ``embeddings_url``) the same way.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import httpx
import orjson

from dispatcher.config.secrets import MissingSecretError, scrub_secrets
from dispatcher.deployments import Deployment
from dispatcher.providers import errors as pe
from dispatcher.providers.base import Completion, Usage
from dispatcher.providers.http import EndpointPool, core_url, timeouts
from dispatcher.providers.openai.errors import error_from_response, map_transport_errors
from dispatcher.providers.openai.headers import rate_limit_info

CHAT_COMPLETIONS_PATH = "/chat/completions"
EMBEDDINGS_PATH = "/embeddings"
USER_AGENT = b"llm-dispatcher/0.1"

#: the credential header of one call, read at call time (keys rotate)
AuthHeader = Callable[[], "tuple[bytes, bytes]"]
#: a non-2xx answer (status, headers, body) as one of our ProviderError classes
ErrorMapper = Callable[[int, httpx.Headers, bytes], pe.ProviderError]


class OpenAICompatibleProvider:
    """Calls ``POST {api_base}/chat/completions`` (and ``/embeddings``) for one deployment.

    ``url`` and ``embeddings_url`` replace those addresses (same host), ``auth_header`` the
    ``Authorization: Bearer <api_key>`` header (it may raise MissingSecretError), ``map_error``
    OpenAI's error mapping.
    """

    def __init__(
        self,
        deployment: Deployment,
        pool: EndpointPool,
        *,
        url: str | None = None,
        embeddings_url: str | None = None,
        auth_header: AuthHeader | None = None,
        map_error: ErrorMapper = error_from_response,
    ):
        self.deployment = deployment
        self._pool = pool
        base = deployment.api_base or ""
        self._url = httpx.URL(url if url is not None else base + CHAT_COMPLETIONS_PATH)
        self._embeddings_url = httpx.URL(embeddings_url if embeddings_url is not None else base + EMBEDDINGS_PATH)
        self._host_header = self._url.netloc
        self._core_url = core_url(self._url)  # the chat call's address, built once
        self._auth_header = auth_header
        self._map_error = map_error

    def _headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"Host", self._host_header),
            (b"Content-Type", b"application/json"),
            (b"Accept", b"application/json"),
            (b"User-Agent", USER_AGENT),
        ]
        try:
            if self._auth_header is not None:
                headers.append(self._auth_header())
            elif self.deployment.api_key is not None:  # OpenAI's way, inline: the hot default
                key = self.deployment.api_key.resolve()
                headers.append((b"Authorization", b"Bearer " + key.encode()))
            for name, value in self.deployment.extra_headers.items():
                headers.append((name.encode(), value.resolve().encode()))
        except MissingSecretError as exc:
            raise pe.MissingCredentialsError(str(exc)) from None
        return headers

    async def complete(self, body: bytes, timeout: float) -> Completion:
        # The chat call inlines what ``_post`` does, without an httpx.Request (its URL and
        # header handling is done once here, or not needed): the hot path, measured per job.
        headers = self._headers()
        headers.append((b"Content-Length", str(len(body)).encode()))
        with map_transport_errors(self.deployment.api_base or "", timeout):
            async with asyncio.timeout(timeout):
                status, response_headers, data = await self._pool.send_parts(
                    b"POST", self._core_url, headers, body, timeouts(timeout)
                )
        if status >= 300:
            raise self._map_error(status, response_headers, data)
        return _parse_completion(status, response_headers, data)

    async def embed(self, body: bytes, timeout: float) -> Completion:
        """``POST .../embeddings``: the body as the provider answered (``object: list``)."""
        status, response_headers, data = await self._post(self._embeddings_url, body, timeout)
        if status >= 300:
            raise self._map_error(status, response_headers, data)
        return _parse_embeddings(status, response_headers, data)

    async def _post(self, url: httpx.URL, body: bytes, timeout: float) -> tuple[int, httpx.Headers, bytes]:
        request = httpx.Request(
            "POST", url, headers=self._headers(), content=body,
            extensions=timeouts(timeout),
        )
        with map_transport_errors(self.deployment.api_base or "", timeout):
            async with asyncio.timeout(timeout):
                return await self._pool.send(request)

    async def aclose(self) -> None:
        """The pool is shared per endpoint and closed by its owner."""


def _json_answer(status: int, data: bytes, holds: str, what: str) -> tuple[bytes, dict]:
    """The scrubbed body and its JSON, which must be an object with a ``holds`` list."""
    data = scrub_secrets(data)  # a provider may echo the key; the body is stored and cached
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise pe.InvalidResponseError(
            f"HTTP {status} with a body that is not JSON: {data[:200].decode('utf-8', 'replace')!r}",
            status_code=status,
        ) from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get(holds), list):
        raise pe.InvalidResponseError(
            f"HTTP {status} with JSON that is not {what} (no '{holds}')", status_code=status,
        )
    return data, parsed


def _parse_completion(status: int, headers: httpx.Headers, data: bytes) -> Completion:
    data, parsed = _json_answer(status, data, "choices", "a chat completion")
    request_id = headers.get("x-request-id") or _str_or_none(parsed.get("id"))
    return Completion(
        status_code=status,
        body=data,
        usage=Usage.from_openai(parsed.get("usage")),
        request_id=request_id,
        rate_limits=rate_limit_info(headers),
    )


def _parse_embeddings(status: int, headers: httpx.Headers, data: bytes) -> Completion:
    data, parsed = _json_answer(status, data, "data", "an embeddings list")
    usage = Usage.from_openai(parsed.get("usage"))
    if usage is not None:
        usage.completion_tokens = 0  # embeddings bill input only, whatever total_tokens says
    return Completion(
        status_code=status,
        body=data,
        usage=usage,
        request_id=headers.get("x-request-id"),
        rate_limits=rate_limit_info(headers),
    )


def _str_or_none(value) -> str | None:
    return str(value) if value is not None else None
