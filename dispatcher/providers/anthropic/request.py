"""An OpenAI chat-completions body as an Anthropic Messages body.

``messages_body`` is the translation the adapter sends; ``request_problem`` runs the same
translation at submit time, so a field Anthropic cannot take is refused when the batch is
submitted, not answered with a provider 400 an hour later.

Every OpenAI field is translated, dropped because it changes nothing (``n: 1``,
``frequency_penalty: 0``, LiteLLM's ``metadata``), passed through because it is Anthropic's
own (``top_k``, ``thinking``), or refused by name. A JSON ``response_format`` becomes a tool
the model is forced to call; ``response.py`` turns that call's input back into the content.
"""

from __future__ import annotations

from typing import Any

from dispatcher.providers.anthropic.messages import UnsupportedRequest, convert_messages

# The tool standing in for response_format (LiteLLM's name, so its users recognise it).
JSON_TOOL_NAME = "json_tool_call"

_TRANSLATED = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "stop", "temperature", "top_p",
    "tools", "tool_choice", "parallel_tool_calls", "response_format", "user", "metadata",
})
# Anthropic's own parameters, which LiteLLM users send in OpenAI-format bodies too.
_PASSED_THROUGH = frozenset({"top_k", "thinking", "service_tier"})
# OpenAI fields with no Anthropic counterpart that change nothing at these values.
_NO_OP_VALUES: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "stream": (False,),
    "logprobs": (False,),
    "store": (False,),
    "frequency_penalty": (0,),
    "presence_penalty": (0,),
}
_HINTS = {
    "n": "Anthropic answers with one choice; send the request n times",
    "stream": "batch requests are never streamed",
    "logprobs": "Anthropic returns no log probabilities",
    "top_logprobs": "Anthropic returns no log probabilities",
    "store": "Anthropic does not store completions",
    "frequency_penalty": "Anthropic has no repetition penalties",
    "presence_penalty": "Anthropic has no repetition penalties",
    "reasoning_effort": "set thinking (Anthropic's extended thinking) instead",
    "functions": "use tools",
    "function_call": "use tool_choice",
    "seed": "Anthropic has no seeded sampling",
    "logit_bias": "Anthropic has no token biasing",
}
_SERVICE_TIERS = ("auto", "standard_only")


def messages_body(body: dict[str, Any], default_max_tokens: int) -> dict[str, Any]:
    """The Messages API body for ``body``; raises UnsupportedRequest naming the field."""
    for key, value in body.items():
        if value is not None and key not in _TRANSLATED and key not in _PASSED_THROUGH:
            _check_no_op(key, value)
    system, messages = convert_messages(body.get("messages"))
    out: dict[str, Any] = {"model": body.get("model"), "max_tokens": _max_tokens(body, default_max_tokens)}
    if system is not None:
        out["system"] = system
    out["messages"] = messages
    stop = _stop_sequences(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    temperature = body.get("temperature")
    if temperature is not None:
        if not _is_number(temperature) or not 0 <= temperature <= 1:
            raise UnsupportedRequest("temperature", f"{temperature!r} is outside Anthropic's range 0 to 1")
        out["temperature"] = temperature
    if body.get("service_tier") is not None and body["service_tier"] not in _SERVICE_TIERS:
        raise UnsupportedRequest(
            "service_tier",
            f"{body['service_tier']!r} cannot be sent to Anthropic (it takes auto or standard_only)",
        )
    for key in ("top_p", *_PASSED_THROUGH):
        if body.get(key) is not None:
            out[key] = body[key]
    user_id = _user_id(body)
    if user_id is not None:
        out["metadata"] = {"user_id": user_id}
    _add_tools(out, body)
    return out


def request_problem(body: dict[str, Any]) -> str | None:
    """Why ``body`` cannot be sent to Anthropic (naming the field), or None when it can."""
    try:
        messages_body(body, default_max_tokens=1)
    except UnsupportedRequest as problem:
        return f"body.{problem}"
    return None


def uses_json_tool(anthropic_body: dict[str, Any]) -> bool:
    """Whether the body forces the response_format tool (its input is the answer)."""
    choice = anthropic_body.get("tool_choice")
    return isinstance(choice, dict) and choice.get("name") == JSON_TOOL_NAME


def _check_no_op(key: str, value: Any) -> None:
    allowed = _NO_OP_VALUES.get(key)
    if allowed is not None and any(
        value == no_op and isinstance(value, bool) == isinstance(no_op, bool) for no_op in allowed
    ):
        return
    hint = _HINTS.get(key) or "Anthropic's Messages API has no such parameter"
    shown = f"{key}={value!r}" if allowed is not None else repr(key)
    raise UnsupportedRequest(key, f"{shown} cannot be sent to Anthropic; {hint}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _max_tokens(body: dict[str, Any], default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UnsupportedRequest(key, "must be a positive integer")
            return value
    return default


def _stop_sequences(stop: Any) -> list[str]:
    if stop is None:
        return []
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
        raise UnsupportedRequest("stop", "must be a string or a list of strings")
    for sequence in sequences:
        if not sequence.strip():
            raise UnsupportedRequest(
                "stop", f"{sequence!r}: Anthropic refuses stop sequences made only of whitespace"
            )
    return sequences


def _user_id(body: dict[str, Any]) -> str | None:
    """``user`` (or ``metadata.user_id``) as Anthropic's ``metadata.user_id``. Other
    ``metadata`` keys label the request for OpenAI's or LiteLLM's dashboards: dropped."""
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise UnsupportedRequest("metadata", "must be an object")
    user_id = (metadata or {}).get("user_id", body.get("user"))
    if user_id is not None and not isinstance(user_id, str):
        raise UnsupportedRequest("user", "must be a string")
    return user_id


def _add_tools(out: dict[str, Any], body: dict[str, Any]) -> None:
    tools = body.get("tools")
    response_format = body.get("response_format")
    json_schema = _json_schema(response_format)
    if json_schema is not None:
        if tools or body.get("tool_choice") is not None:
            raise UnsupportedRequest(
                "response_format", "a JSON response_format is sent to Anthropic as a forced tool "
                "call, so it cannot be combined with tools or tool_choice"
            )
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
            raise UnsupportedRequest(
                "response_format", "Anthropic forbids forced tool use (how a JSON response_format "
                "is sent) while thinking is on"
            )
        out["tools"] = [{
            "name": JSON_TOOL_NAME,
            "description": "Answer with a JSON object that follows this schema.",
            "input_schema": json_schema,
        }]
        out["tool_choice"] = {"type": "tool", "name": JSON_TOOL_NAME}
        return
    if tools:
        if not isinstance(tools, list):
            raise UnsupportedRequest("tools", "must be a list")
        out["tools"] = [_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools)]
    choice = _tool_choice(body.get("tool_choice"), bool(tools))
    if body.get("parallel_tool_calls") is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        out["tool_choice"] = choice


def _json_schema(response_format: Any) -> dict | None:
    """The schema a JSON response_format asks for; None for text or no response_format."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise UnsupportedRequest(
                "response_format.json_schema.schema", "must be a JSON schema of an object for Anthropic"
            )
        return schema
    raise UnsupportedRequest("response_format", f"type {kind!r} cannot be sent to Anthropic")


def _tool(tool: Any, where: str) -> dict:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
        raise UnsupportedRequest(where, "only function tools can be sent to Anthropic")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise UnsupportedRequest(f"{where}.function.name", "is required")
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    out = {"name": name}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = schema  # OpenAI's "strict" has no Anthropic counterpart: dropped
    if tool.get("cache_control") is not None:
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any, has_tools: bool) -> dict | None:
    if choice is None or (choice in ("auto", "none") and not has_tools):
        return None
    if not has_tools:
        raise UnsupportedRequest("tool_choice", "is set but the request has no tools")
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise UnsupportedRequest(
        "tool_choice",
        'must be auto, required, none or {"type": "function", "function": {"name": ...}}',
    )
