"""HTTP for batch API clients: one call's JSON answer, or a results file streamed by line.

Batch calls are few and some are large (a 200 MB upload, a results download), so they use an
``httpx.AsyncClient`` of their own rather than the realtime ``EndpointPool``. Every failure
leaves here as one of our ``ProviderError`` classes, its text free of secrets.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable

import httpx
import orjson

from dispatcher.providers import errors as pe
from dispatcher.providers.http import shared_ssl_context
from dispatcher.providers.openai.errors import map_transport_errors

#: uploads, batch creation (the provider reads the file) and downloads
LONG_TIMEOUT_S = 600.0
SHORT_TIMEOUT_S = 60.0

Headers = Callable[[], dict[str, str]]
ErrorMapper = Callable[[int, httpx.Headers, bytes], pe.ProviderError]


class BatchHttp:
    """Calls one provider with fresh credentials each time (``headers``), mapping errors."""

    def __init__(self, api_base: str, headers: Headers, map_error: ErrorMapper):
        self._api_base = api_base  # named in transport errors (holds no key)
        self._headers = headers
        self._map_error = map_error
        self._client = httpx.AsyncClient(verify=shared_ssl_context(), timeout=SHORT_TIMEOUT_S,
                                         follow_redirects=False)

    async def request(self, method: str, url: httpx.URL | str, *, long: bool = False, **kwargs: Any) -> dict:
        """One call; its JSON object answer. Non-2xx answers raise through ``map_error``."""
        timeout = LONG_TIMEOUT_S if long else SHORT_TIMEOUT_S
        headers = {**self._headers(), **kwargs.pop("headers", {})}
        with map_transport_errors(self._api_base, timeout):
            response = await self._client.request(method, url, headers=headers, timeout=timeout, **kwargs)
        if response.status_code >= 300:
            raise self._map_error(response.status_code, response.headers, response.content)
        return parse_object(response.status_code, response.content)

    async def stream_lines(self, url: httpx.URL | str) -> AsyncIterator[str]:
        """The non-blank lines of a (large) download, as they arrive."""
        with map_transport_errors(self._api_base, LONG_TIMEOUT_S):
            async with self._client.stream("GET", url, headers=self._headers(), timeout=LONG_TIMEOUT_S) as response:
                if response.status_code >= 300:
                    raise self._map_error(response.status_code, response.headers, await response.aread())
                async for line in response.aiter_lines():
                    if line.strip():
                        yield line

    async def pages(self, page_url: Callable[[str | None], httpx.URL | str]) -> AsyncIterator[dict]:
        """Every item of a cursor-paged list (``data``, ``has_more``, ``last_id``: OpenAI's and
        Anthropic's shape), page by page; ``page_url(after)`` names the page after ``after``."""
        after: str | None = None
        while True:
            data = await self.request("GET", page_url(after))
            items = [item for item in data.get("data") or () if isinstance(item, dict)]
            for item in items:
                yield item
            last = data.get("last_id") or (items[-1].get("id") if items else None)
            if not items or not data.get("has_more") or not isinstance(last, str):
                return
            after = last

    async def aclose(self) -> None:
        await self._client.aclose()


def parse_object(status: int, data: bytes) -> dict:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise pe.InvalidResponseError(f"HTTP {status} with a body that is not JSON", status_code=status) from None
    if not isinstance(parsed, dict):
        raise pe.InvalidResponseError(f"HTTP {status} with JSON that is not an object", status_code=status)
    return parsed
