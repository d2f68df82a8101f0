"""The built-in mock provider (``mock/<name>``): answers in-process, no network, no key.

For demos, dry runs and the embedded quick start. Replies are deterministic (see
``replies.py``); latency is ``mock_latency_ms`` plus or minus ``mock_latency_jitter_ms``;
usage is estimated from the prompt and the reply like a real provider would bill it.
"""

from __future__ import annotations

import asyncio
import random

import httpx
import orjson

from dispatcher.deployments import Deployment
from dispatcher.providers import errors as pe
from dispatcher.providers.base import Completion, Usage
from dispatcher.providers.mock.embeddings import NotAnEmbeddingsRequest, mock_embeddings
from dispatcher.providers.mock.replies import mock_reply
from dispatcher.providers.send_permit import check_send_permit
from dispatcher.providers.openai.errors import error_from_response


class MockProvider:
    """In-process chat completions and embeddings with configurable latency."""

    def __init__(self, deployment: Deployment, rng: random.Random | None = None):
        self.deployment = deployment
        self._rng = rng or random.Random()

    def _latency_s(self) -> float:
        d = self.deployment
        if d.mock_latency_jitter_ms:
            ms = self._rng.uniform(
                d.mock_latency_ms - d.mock_latency_jitter_ms,
                d.mock_latency_ms + d.mock_latency_jitter_ms,
            )
        else:
            ms = d.mock_latency_ms
        return max(0.0, ms) / 1000.0

    async def complete(self, body: bytes, timeout: float) -> Completion:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise pe.BadRequestError(f"mock provider: body is not JSON: {exc}") from None
        check_send_permit()
        reply = mock_reply(parsed, self.deployment.provider_model, self.deployment.mock_response)
        delay = self._latency_s() + reply.sleep_s
        if delay > timeout:
            await asyncio.sleep(timeout)
            raise pe.ProviderTimeoutError(f"mock provider did not answer within {timeout:g}s")
        if delay:
            await asyncio.sleep(delay)
        if reply.status >= 300:
            raise error_from_response(reply.status, httpx.Headers(), reply.body)
        if reply.usage is None:
            raise pe.InvalidResponseError(
                f"HTTP {reply.status} with a body that is not JSON", status_code=reply.status
            )
        return Completion(
            status_code=reply.status,
            body=reply.body,
            usage=Usage(**reply.usage),
            request_id=f"mock-{self._rng.getrandbits(48):012x}",
        )

    async def embed(self, body: bytes, timeout: float) -> Completion:
        try:
            answer, tokens = mock_embeddings(orjson.loads(body), self.deployment.provider_model)
        except (orjson.JSONDecodeError, NotAnEmbeddingsRequest) as exc:
            raise pe.BadRequestError(f"mock provider: {exc}") from None
        check_send_permit()
        delay = self._latency_s()
        if delay > timeout:
            await asyncio.sleep(timeout)
            raise pe.ProviderTimeoutError(f"mock provider did not answer within {timeout:g}s")
        if delay:
            await asyncio.sleep(delay)
        return Completion(
            status_code=200,
            body=answer,
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
            request_id=f"mock-{self._rng.getrandbits(48):012x}",
        )

    async def aclose(self) -> None:
        return None
