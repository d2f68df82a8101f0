"""The mock's answer to a well-formed Messages request: an Anthropic ``Message``.

Deterministic for equal bodies (ids derive from the prompt), except for prompt caching,
which depends on what was sent before:

- Text: ``Mock reply to: <last user text>`` (the text of a ``tool_result`` when the last user
  turn is only tool results). ``stop_sequences`` cut it where one occurs (``stop_sequence``);
  past ``max_tokens`` it is cut to ``max_tokens`` tokens (``max_tokens``). With ``thinking``
  enabled a thinking block comes first.
- A ``tool_use`` block (``stop_reason: tool_use``) instead when ``tool_choice`` is ``tool``
  (that tool) or ``any`` (the first tool), or, with ``auto`` or no tool_choice, when the last
  user message says ``[[mock:tool]]`` (first tool) or ``[[mock:tool=NAME]]``; ``any`` also
  honours ``=NAME``. Its input is built from the tool's ``input_schema``: ``const``, first
  ``enum`` value or ``default`` if given, else by type ("mock", 1, 1.0, true, one array item,
  every property of an object), so a JSON-schema tool gets schema-valid input.
- ``usage``: input tokens estimated like ``dispatcher.tokens`` (four characters a token, 85 an
  image, JSON of tools and tool blocks), times ``--prompt-token-scale``; output tokens of the
  content. Prompt caching is simulated at the ``cache_control`` breakpoints (and a top-level
  ``cache_control``: the whole prompt): the longest prefix cached before (5 minutes, or 1 hour
  with ``ttl: 1h``, renewed on each hit) is read (``cache_read_input_tokens``), the rest up to
  the last breakpoint is written (``cache_creation_input_tokens``, split by TTL in
  ``cache_creation``). Anthropic's minimum cacheable length is not applied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from dispatcher.mockserver.limits import Charge
from dispatcher.tokens import (
    CHARS_PER_TOKEN,
    IMAGE_TOKENS,
    PER_MESSAGE_OVERHEAD,
    PER_REQUEST_OVERHEAD,
    estimate_text_tokens,
)

_TTL_S = {"5m": 300.0, "1h": 3600.0}
_PRUNE_AT = 4096


@dataclass(slots=True)
class _Breakpoint:
    key: str  # hash of the prompt up to and including this block
    tokens: int  # tokens of that prefix
    ttl: str


@dataclass(slots=True)
class CacheUse:
    """What prompt caching does for one request, and what it stores once admitted."""

    read: int = 0
    written: dict[str, int] = field(default_factory=lambda: {"5m": 0, "1h": 0})
    renew: list[tuple[str, str]] = field(default_factory=list)  # (key, ttl) to store or refresh

    @property
    def created(self) -> int:
        return self.written["5m"] + self.written["1h"]

    def commit(self, cache: dict[str, float], now: float) -> None:
        for key, ttl in self.renew:
            cache[key] = max(cache.get(key, 0.0), now + _TTL_S[ttl])
        if self.renew and len(cache) >= _PRUNE_AT and len(cache) % _PRUNE_AT == 0:
            # Long runs with ever-new prefixes: drop the expired ones now and then.
            for key in [key for key, until in cache.items() if until <= now]:
                del cache[key]


@dataclass(slots=True)
class MessageAnswer:
    body: bytes
    billed: dict[str, int]  # OpenAI's terms plus the cache counts (for the stats)
    charge: Charge
    cache: CacheUse


def fingerprint(body: dict[str, Any]) -> str:
    """Equal system and messages, equal fingerprints."""
    raw = orjson.dumps([body.get("system"), body.get("messages")], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha1(raw).hexdigest()[:16]


def message_answer(
    body: dict[str, Any], *, cache: dict[str, float], now: float, prompt_token_scale: float = 1.0,
    fixed_text: str | None = None, tool_named: str | None = None, refusal: bool = False,
) -> MessageAnswer:
    """The Message for a checked body. ``tool_named``: the ``[[mock:tool]]`` directive of the
    last user message ("" for the first tool, None without it)."""
    pieces = _pieces(body)
    total = PER_REQUEST_OVERHEAD + sum(tokens for tokens, _, _ in pieces)
    use = _cache_use(body, pieces, cache, now)
    scaled_total = max(1, round(total * prompt_token_scale))
    read = round(use.read * prompt_token_scale)
    written = {ttl: round(n * prompt_token_scale) for ttl, n in use.written.items()}
    created = written["5m"] + written["1h"]
    input_tokens = max(0, scaled_total - read - created)

    fp = fingerprint(body)
    max_tokens = body["max_tokens"]
    content, stop_reason, stop_sequence, output_tokens = _content(body, fp, fixed_text, tool_named, refusal)
    if output_tokens > max_tokens:
        output_tokens, stop_reason, stop_sequence = max_tokens, "max_tokens", None
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": written["5m"], "ephemeral_1h_input_tokens": written["1h"]},
        "service_tier": "standard",
    }
    message = {
        "id": f"msg_mock_{fp}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }
    prompt = input_tokens + created + read
    billed = {
        "prompt_tokens": prompt,
        "completion_tokens": output_tokens,
        "total_tokens": prompt + output_tokens,
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": read,
    }
    # tpm as on OpenAI's route (whole prompt plus the budget); itpm as Anthropic counts it
    # (cache reads do not count); otpm at max_tokens while in flight.
    charge = Charge(prompt + max_tokens, input_tokens + created, output_tokens, max(max_tokens, output_tokens))
    return MessageAnswer(orjson.dumps(message), billed, charge, use)


# -- input tokens and prompt caching -------------------------------------------------------

def _pieces(body: dict[str, Any]) -> list[tuple[int, Any, Any]]:
    """The prompt in Anthropic's cache order (tools, system, messages): one (tokens,
    cache_control, the piece itself) per tool, system block and content block."""
    pieces: list[tuple[int, Any, Any]] = []
    for tool in body.get("tools") or ():
        pieces.append((estimate_text_tokens(orjson.dumps(_without_cache_control(tool)).decode()),
                       tool.get("cache_control"), tool))
    system = body.get("system")
    if isinstance(system, str) and system:
        pieces.append((PER_MESSAGE_OVERHEAD + estimate_text_tokens(system), None, system))
    elif isinstance(system, list):
        for index, block in enumerate(system):
            overhead = PER_MESSAGE_OVERHEAD if index == 0 else 0
            pieces.append((overhead + estimate_text_tokens(block["text"]), block.get("cache_control"), block))
    for message in body["messages"]:
        content = message["content"]
        role = message["role"]
        if isinstance(content, str):
            pieces.append((PER_MESSAGE_OVERHEAD + estimate_text_tokens(content), None, [role, content]))
            continue
        pieces.append((PER_MESSAGE_OVERHEAD, None, role))
        for block in content:
            pieces.append((_block_tokens(block), block.get("cache_control"), block))
    return pieces


def _block_tokens(block: dict[str, Any]) -> int:
    kind = block["type"]
    if kind == "text":
        return estimate_text_tokens(block["text"])
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "document":
        source = block["source"]
        if isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str):
            return estimate_text_tokens(source["data"])
        return IMAGE_TOKENS
    if kind == "tool_use":
        return estimate_text_tokens(orjson.dumps({"name": block["name"], "input": block["input"]}).decode())
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return estimate_text_tokens(content)
        return sum(_block_tokens(part) for part in content or ())
    if kind == "thinking":
        return estimate_text_tokens(block["thinking"])
    if kind == "search_result":
        return estimate_text_tokens(orjson.dumps(block["content"]).decode())
    return 0  # redacted_thinking: not counted


def _without_cache_control(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "cache_control"}


def _cache_use(
    body: dict[str, Any], pieces: list[tuple[int, Any, Any]], cache: dict[str, float], now: float
) -> CacheUse:
    automatic = body.get("cache_control")
    if not automatic and not any(control for _, control, _ in pieces):
        return CacheUse()
    breakpoints: list[_Breakpoint] = []
    running = hashlib.sha1(str(body["model"]).encode())
    tokens = PER_REQUEST_OVERHEAD
    for index, (count, control, piece) in enumerate(pieces):
        if isinstance(piece, dict):
            piece = _without_cache_control(piece)
        running.update(orjson.dumps(piece, option=orjson.OPT_SORT_KEYS))
        tokens += count
        if index == len(pieces) - 1 and automatic and not control:
            control = automatic
        if control:
            breakpoints.append(_Breakpoint(running.hexdigest(), tokens, control.get("ttl", "5m")))
    use = CacheUse()
    hit = -1
    for index in range(len(breakpoints) - 1, -1, -1):
        if cache.get(breakpoints[index].key, 0.0) > now:
            hit = index
            break
    if hit >= 0:
        use.read = breakpoints[hit].tokens
        use.renew.append((breakpoints[hit].key, breakpoints[hit].ttl))
    previous = use.read
    for point in breakpoints[hit + 1:]:
        use.written[point.ttl] += point.tokens - previous
        previous = point.tokens
        use.renew.append((point.key, point.ttl))
    return use


# -- output --------------------------------------------------------------------------------

def _content(
    body: dict[str, Any], fp: str, fixed_text: str | None, tool_named: str | None, refusal: bool
) -> tuple[list[dict[str, Any]], str, str | None, int]:
    """(content blocks, stop_reason, stop_sequence, output tokens)."""
    blocks: list[dict[str, Any]] = []
    output = 0
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive") and not refusal:
        text = "The mock considers the request."
        blocks.append({"type": "thinking", "thinking": text, "signature": f"mock-signature-{fp}"})
        output += estimate_text_tokens(text)
    if refusal:
        text = "I can't help with that request (mock refusal)."
        return [{"type": "text", "text": text}], "refusal", None, estimate_text_tokens(text)
    tool = _chosen_tool(body, tool_named)
    if tool is not None:
        call = {"type": "tool_use", "id": f"toolu_mock_{fp}", "name": tool["name"],
                "input": example_value(tool.get("input_schema") or {"type": "object"})}
        blocks.append(call)
        output += estimate_text_tokens(orjson.dumps({"name": call["name"], "input": call["input"]}).decode())
        return blocks, "tool_use", None, output
    text = fixed_text if fixed_text is not None else f"Mock reply to: {_prompt_text(body)[:200]}"
    budget_chars = (body["max_tokens"] - output) * CHARS_PER_TOKEN
    stop_reason, stop_sequence = "end_turn", None
    cut = len(text)
    for sequence in body.get("stop_sequences") or ():
        at = text.find(sequence)
        if 0 <= at < cut:
            cut, stop_sequence = at, sequence
    if stop_sequence is not None and cut < budget_chars:
        text, stop_reason = text[:cut], "stop_sequence"
    else:
        stop_sequence = None
        if estimate_text_tokens(text) > body["max_tokens"] - output:
            text, stop_reason = text[:max(0, budget_chars)], "max_tokens"
    blocks.append({"type": "text", "text": text})
    return blocks, stop_reason, stop_sequence, output + estimate_text_tokens(text)


def _chosen_tool(body: dict[str, Any], tool_named: str | None) -> dict[str, Any] | None:
    tools = [tool for tool in body.get("tools") or () if tool.get("type") in (None, "custom")]
    if not tools:
        return None
    by_name = {tool["name"]: tool for tool in tools}
    choice = body.get("tool_choice") or {"type": "auto"}
    kind = choice["type"]
    if kind == "tool":
        return by_name[choice["name"]]
    if kind == "any":
        return by_name.get(tool_named or "", tools[0])
    if kind == "auto" and tool_named is not None:
        return by_name.get(tool_named, tools[0]) if tool_named else tools[0]
    return None


def _prompt_text(body: dict[str, Any]) -> str:
    """The last user message's text, or its tool results' text if it has no text."""
    for message in reversed(body["messages"]):
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            return content
        texts = [b["text"] for b in content if b["type"] == "text"]
        if texts:
            return " ".join(texts)
        results = []
        for block in content:
            if block["type"] == "tool_result":
                inner = block.get("content")
                if isinstance(inner, str):
                    results.append(inner)
                elif isinstance(inner, list):
                    results.extend(p["text"] for p in inner if p.get("type") == "text")
        return "tool result " + " ".join(results)
    return ""


def example_value(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A value that fits a JSON schema, built the same way every time (``$ref``s into the
    schema's own ``$defs`` / ``definitions`` are followed; recursion stops at depth 8)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 8:
        return None if depth > 8 else "mock"
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return example_value(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_value(schema[key][0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        return {name: example_value(sub, root, depth + 1) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(1, schema.get("minItems", 1))
        return [example_value(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    return {"string": "mock", "integer": 1, "number": 1.0, "boolean": True, "null": None}.get(kind, "mock")
