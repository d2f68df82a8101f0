"""What every provider adapter implements, and what a successful call returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Usage:
    """Tokens the provider billed for one call.

    ``prompt_tokens`` counts every prompt token; of them, ``cached_tokens`` were read from the
    provider's prompt cache and ``cache_creation_tokens`` written to it (Anthropic bills writes
    above the input price; OpenAI reports none).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int | None = None
    cache_creation_tokens: int | None = None

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> "Usage | None":
        if not isinstance(usage, dict):
            return None
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        total = int(usage.get("total_tokens") or (prompt + completion))
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        # LiteLLM's field for prompt-cache writes, which the Anthropic adapter also writes
        written = usage.get("cache_creation_input_tokens")
        return cls(
            prompt, completion, total,
            int(cached) if cached is not None else None,
            int(written) if written is not None else None,
        )


@dataclass(slots=True)
class RateLimitInfo:
    """What ``x-ratelimit-*`` headers said about the requests and tokens the key has left.

    The ``limit_*`` fields are the limits the provider counts against (in its own window);
    input and output tokens apart where the provider limits them apart (Anthropic).
    """

    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None
    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_input_tokens: int | None = None
    limit_input_tokens: int | None = None
    remaining_output_tokens: int | None = None
    limit_output_tokens: int | None = None


@dataclass(slots=True)
class Completion:
    """A successful provider call: the raw body to store and what we read from it."""

    status_code: int
    body: bytes
    usage: Usage | None
    request_id: str | None = None
    rate_limits: RateLimitInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    """One deployment's way of making a chat completion (and embeddings).

    ``complete`` takes the request body as JSON bytes (model already set) and returns a
    Completion or raises a ``ProviderError`` subclass; it never raises anything else.
    ``embed`` does the same for an embeddings body: its Completion's body is OpenAI's
    embeddings list (``object: list``, ``data[].embedding``) and its usage has no completion
    tokens.
    """

    async def complete(self, body: bytes, timeout: float) -> Completion: ...

    async def embed(self, body: bytes, timeout: float) -> Completion: ...

    async def aclose(self) -> None: ...
