"""Chat completions through Anthropic's Messages API (``anthropic/<model>``).

The job's OpenAI chat body is translated to a Messages body (``request.py``), sent to
``POST {api_base}/v1/messages`` with ``x-api-key`` and ``anthropic-version``, and the Message
that comes back is stored as an OpenAI ``chat.completion`` (``response.py``), so results look
the same whichever provider served them.
"""

from __future__ import annotations

import asyncio

import httpx
import orjson

from dispatcher.config.secrets import MissingSecretError, scrub_secrets
from dispatcher.deployments import Deployment
from dispatcher.providers import errors as pe
from dispatcher.providers.anthropic.errors import error_from_response, map_transport_errors, rate_limit_info
from dispatcher.providers.anthropic.messages import UnsupportedRequest
from dispatcher.providers.anthropic.request import messages_body, uses_json_tool
from dispatcher.providers.anthropic.response import NotAMessage, chat_completion
from dispatcher.providers.base import Completion, Usage
from dispatcher.providers.http import EndpointPool, core_url, timeouts

ANTHROPIC_VERSION = b"2023-06-01"
USER_AGENT = b"llm-dispatcher/0.1"


def messages_url(api_base: str) -> str:
    """The Messages endpoint under ``api_base``, written with or without ``/v1`` (LiteLLM
    accepts ``https://api.anthropic.com``, ``.../v1`` and ``.../v1/messages``)."""
    base = api_base.rstrip("/")
    if base.endswith("/v1/messages"):
        return base
    if base.endswith("/v1"):
        return base + "/messages"
    return base + "/v1/messages"


class AnthropicProvider:
    """Calls ``POST {api_base}/v1/messages`` for one deployment."""

    def __init__(self, deployment: Deployment, pool: EndpointPool):
        self.deployment = deployment
        self._pool = pool
        self._url = httpx.URL(messages_url(deployment.api_base or ""))
        self._host_header = self._url.netloc
        self._core_url = core_url(self._url)  # built once: the call is the hot path

    def _headers(self) -> list[tuple[bytes, bytes]]:
        headers = {
            b"host": (b"Host", self._host_header),
            b"content-type": (b"Content-Type", b"application/json"),
            b"accept": (b"Accept", b"application/json"),
            b"user-agent": (b"User-Agent", USER_AGENT),
            b"anthropic-version": (b"anthropic-version", ANTHROPIC_VERSION),
        }
        try:
            if self.deployment.api_key is not None:
                headers[b"x-api-key"] = (b"x-api-key", self.deployment.api_key.resolve().encode())
            # anthropic-beta and any other header from litellm_params; one of ours is replaced
            for name, value in self.deployment.extra_headers.items():
                headers[name.lower().encode()] = (name.encode(), value.resolve().encode())
        except MissingSecretError as exc:
            raise pe.MissingCredentialsError(str(exc)) from None
        return list(headers.values())

    def _messages_body(self, body: bytes) -> dict:
        try:
            return messages_body(orjson.loads(body), self.deployment.default_max_tokens)
        except orjson.JSONDecodeError as exc:
            error = pe.BadRequestError(f"the request body is not JSON: {exc}")
        except UnsupportedRequest as exc:
            error = pe.BadRequestError(f"cannot be sent to Anthropic: {exc}")
        error.request_sent = False  # refused here: nothing reached Anthropic
        raise error

    async def complete(self, body: bytes, timeout: float) -> Completion:
        request_body = self._messages_body(body)
        content = orjson.dumps(request_body)
        request_headers = self._headers()
        request_headers.append((b"Content-Length", str(len(content)).encode()))
        with map_transport_errors(self.deployment.api_base or "", timeout):
            async with asyncio.timeout(timeout):
                status, headers, data = await self._pool.send_parts(
                    b"POST", self._core_url, request_headers, content, timeouts(timeout)
                )
        if status >= 300:
            raise error_from_response(status, headers, data)
        return _completion(status, headers, data, json_tool=uses_json_tool(request_body))

    async def embed(self, body: bytes, timeout: float) -> Completion:
        """Anthropic has no embeddings API. Submit refuses such lines for Anthropic groups; a
        job can still get here by falling back from another group."""
        error = pe.BadRequestError(f"{self.deployment.provider}/{self.deployment.provider_model}: "
                                   "Anthropic has no embeddings API")
        error.request_sent = False
        raise error

    async def aclose(self) -> None:
        """The pool is shared per endpoint and closed by its owner."""


def _completion(status: int, headers: httpx.Headers, data: bytes, *, json_tool: bool) -> Completion:
    data = scrub_secrets(data)  # a provider may echo the key; the answer is stored and cached
    try:
        completion = chat_completion(orjson.loads(data), json_tool=json_tool)
    except orjson.JSONDecodeError:
        raise pe.InvalidResponseError(
            f"HTTP {status} with a body that is not JSON: {data[:200].decode('utf-8', 'replace')!r}",
            status_code=status,
        ) from None
    except NotAMessage as exc:
        raise pe.InvalidResponseError(f"HTTP {status}: {exc}", status_code=status) from None
    return Completion(
        status_code=status,
        body=orjson.dumps(completion),
        usage=Usage.from_openai(completion["usage"]),
        request_id=headers.get("request-id") or completion.get("id"),
        rate_limits=rate_limit_info(headers),
    )
