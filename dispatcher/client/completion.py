"""The chat-completions body of one ``Client.complete`` call."""

from __future__ import annotations

from typing import Any

from dispatcher.errors import UsageError


def completion_body(
    request: str | dict[str, Any],
    *,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> dict[str, Any]:
    """A prompt becomes one user message; a body is copied. ``system`` goes first."""
    if isinstance(request, str):
        if not request.strip():
            raise UsageError("the prompt is empty")
        body: dict[str, Any] = {"messages": [{"role": "user", "content": request}]}
    elif isinstance(request, dict):
        body = dict(request)
    else:
        raise UsageError("a completion request is a prompt (str) or a chat-completions body (dict)")
    if system:
        body["messages"] = [{"role": "system", "content": system}] + list(body.get("messages") or [])
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    return body
