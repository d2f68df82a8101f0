"""What the mock provider answers: deterministic chat completions, and scripted failures.

Shared by the in-process ``mock/`` adapter and the HTTP mock server, so a dry run and a test
against the server see the same replies. A user message may carry directives that make the
mock fail on purpose (for demos and tests):

    [[mock:status=500]]        answer with that HTTP status and an OpenAI-style error body
    [[mock:context_window]]    400 context_length_exceeded
    [[mock:content_policy]]    400 content_policy_violation
    [[mock:invalid_json]]      200 with a body that is not JSON
    [[mock:sleep=2.5]]         wait that many seconds before answering
    [[mock:fail_first=2]]      (HTTP server only) 500 for the first two tries of this prompt
    [[mock:echo_key]]          (HTTP server only) 200 whose answer quotes the Authorization
                               header received (some providers echo keys; we must scrub them)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from dispatcher.tokens import (
    estimate_prompt_tokens,
    estimate_text_tokens,
    requested_completion_tokens,
)

_DIRECTIVE = re.compile(r"\[\[mock:([a-z_]+)(?:=([^\]]*))?\]\]")
MOCK_CREATED = 1_700_000_000  # fixed, so replies are byte-for-byte repeatable


@dataclass(slots=True)
class MockReply:
    status: int
    body: bytes
    sleep_s: float = 0.0
    usage: dict[str, int] | None = None


def directives(body: dict[str, Any]) -> dict[str, str]:
    """The ``[[mock:...]]`` directives found in the request's messages."""
    found: dict[str, str] = {}
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        texts = [content] if isinstance(content, str) else [
            part.get("text") for part in content or () if isinstance(part, dict)
        ] if isinstance(content, list) else []
        for text in texts:
            if isinstance(text, str) and "[[mock:" in text:
                for name, value in _DIRECTIVE.findall(text):
                    found[name] = value
    return found


def fingerprint(body: dict[str, Any]) -> str:
    """A stable id of the request's messages: equal prompts give equal fingerprints."""
    raw = orjson.dumps(body.get("messages"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha1(raw).hexdigest()[:16]


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or ()):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
    return ""


def error_body(status: int, message: str, code: str | None, error_type: str) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    )


def mock_reply(
    body: dict[str, Any], model: str, fixed_response: str | None = None, prompt_token_scale: float = 1.0
) -> MockReply:
    """The reply to one request, honouring directives; deterministic for equal bodies.

    ``prompt_token_scale`` plays a provider whose tokenizer counts the prompt differently
    from our estimate (0.7: it bills 70% of what we estimate).
    """
    found = directives(body)
    try:
        sleep_s = float(found.get("sleep") or 0.0)
        status = int(found["status"] or 500) if "status" in found else None
    except ValueError:
        return MockReply(400, error_body(400, f"unreadable mock directive in {found}", "invalid_mock_directive",
                                         "invalid_request_error"))
    if status is not None:
        return MockReply(
            status, error_body(status, f"mock error {status}", None, "mock_error"), sleep_s
        )
    if "context_window" in found:
        return MockReply(
            400,
            error_body(
                400,
                "This model's maximum context length is 8192 tokens (mock).",
                "context_length_exceeded",
                "invalid_request_error",
            ),
            sleep_s,
        )
    if "content_policy" in found:
        return MockReply(
            400,
            error_body(
                400,
                "Your request was rejected as a result of our safety system (mock).",
                "content_policy_violation",
                "invalid_request_error",
            ),
            sleep_s,
        )
    if "invalid_json" in found:
        return MockReply(200, b"<html>this is not json</html>", sleep_s)
    data, usage = _completion(body, model, fixed_response, prompt_token_scale)
    return MockReply(200, data, sleep_s, usage)


def _completion(body: dict[str, Any], model: str, fixed_response: str | None, prompt_token_scale: float):
    prompt = last_user_text(body)
    content = fixed_response if fixed_response is not None else f"Mock reply to: {prompt[:200]}"
    prompt_tokens = max(1, round(estimate_prompt_tokens(body) * prompt_token_scale))
    # One choice is returned, so the cap is max_tokens itself (not max_tokens * n).
    limit = requested_completion_tokens({**body, "n": 1}, default=1 << 30)
    completion_tokens = min(estimate_text_tokens(content), limit)
    finish_reason = "length" if completion_tokens < estimate_text_tokens(content) else "stop"
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    reply = {
        "id": f"chatcmpl-mock-{fingerprint(body)}",
        "object": "chat.completion",
        "created": MOCK_CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }
    return orjson.dumps(reply), usage
