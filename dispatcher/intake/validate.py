"""Validation of one submitted request line, into a job spec or a problem report.

Two line shapes are accepted:

* OpenAI batch: ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {...}}``,
  or ``"url": "/v1/embeddings"`` with an embeddings body (``intake/embeddings.py``)
* short form: chat body fields at the top level, ``{"custom_id": .., "messages": [..], ..}``

As OpenAI requires, every line of a batch uses one url: the batch's endpoint.

Either may carry a top-level ``priority`` (0-9 or a name) overriding the batch's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Callable, Collection, Mapping

import orjson

from dispatcher.intake.embeddings import embeddings_problem, estimate_input_tokens
from dispatcher.intake.storable import MAX_DEPTH, NUL, find_unstorable, needs_check
from dispatcher.priority import parse_priority
from dispatcher.tokens import estimate_prompt_tokens, requested_completion_tokens

CHAT_COMPLETIONS = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
#: the endpoints batches run, in the order error messages name them
SERVED_ENDPOINTS = (CHAT_COMPLETIONS, EMBEDDINGS)
# A line's url -> the endpoint it calls (the forms without /v1 are the openai SDK's paths).
_ENDPOINT_OF_URL = {
    CHAT_COMPLETIONS: CHAT_COMPLETIONS, "/chat/completions": CHAT_COMPLETIONS,
    EMBEDDINGS: EMBEDDINGS, "/embeddings": EMBEDDINGS,
}
MAX_CUSTOM_ID_LENGTH = 512
ENVELOPE_KEYS = {"custom_id", "method", "url", "body", "priority"}
# Fields that would let a request redirect a call or pick a credential: config decides these.
FORBIDDEN_BODY_KEYS = {
    "api_key": "keys come from the config (api_key: os.environ/NAME), never from requests",
    "api_base": "the endpoint comes from the config's model_list, not from requests",
    "base_url": "the endpoint comes from the config's model_list, not from requests",
    "api_version": "the API version belongs to the deployment's config, not to requests",
    "extra_headers": "set extra_headers in the config's litellm_params",
}


# Error codes of lines refused by validation (never worth retrying as they are).
VALIDATION_CODES = frozenset({
    "invalid_json", "invalid_request", "invalid_priority", "missing_model", "unknown_model",
    "invalid_custom_id", "duplicate_custom_id", "invalid_method", "invalid_url", "invalid_body",
    "forbidden_field", "missing_messages", "invalid_messages",
})


def endpoint_of_url(url: object) -> str | None:
    """The endpoint a line's ``url`` calls, None if it is not one batches run."""
    return _ENDPOINT_OF_URL.get(url) if isinstance(url, str) else None


@dataclass(slots=True)
class Problem:
    """Why a line was refused, in OpenAI's batch error shape."""

    line: int
    code: str
    message: str
    param: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


@dataclass(slots=True)
class JobSpec:
    """A valid request, ready to store."""

    line: int
    custom_id: str | None  # None: the line has none; ``generated_id`` names it once all are read
    model_group: str
    body: str  # compact JSON without "model"
    priority: int | None
    est_prompt_tokens: int
    est_completion_tokens: int
    endpoint: str | None = None  # stored on the job; None: /v1/chat/completions (most jobs)


def _json_problem(raw: bytes | str, exc: orjson.JSONDecodeError) -> str:
    """What is wrong with a line that does not parse, in the user's terms."""
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return (f"not UTF-8 text: byte 0x{raw[bad.start]:02x} at column {bad.start + 1}; "
                    "save the file as UTF-8")
    if exc.msg.startswith("depth limit exceeded"):
        return f"JSON nested deeper than {MAX_DEPTH} levels; flatten the request"
    # orjson's "line 1 column N" is within this one line: keep the column, drop its "line 1".
    return f"not valid JSON ({exc.msg}, column {exc.colno})"


class LineValidator:
    """Validates lines of one submission (remembers custom_ids to refuse duplicates)."""

    def __init__(
        self,
        *,
        known_groups: Collection[str],
        default_group: str | None,
        default_max_tokens: int,
        request_checks: Mapping[str, Callable[..., str | None]] | None = None,
        endpoint: str | None = None,
    ):
        """``request_checks``: per model group, what its deployments' adapters cannot send (an
        Anthropic group refuses fields the Messages API has no place for, and embeddings):
        ``check(body, endpoint)`` gives the problem or None. ``endpoint``: the url every line
        must use; without it, the first valid line's url sets it."""
        self._groups = set(known_groups)
        if endpoint is not None and endpoint not in SERVED_ENDPOINTS:
            raise ValueError(f"endpoint {endpoint!r} is not served; batches run {', '.join(SERVED_ENDPOINTS)}")
        self.endpoint = endpoint
        self._endpoint_line: int | None = None  # the line that set it
        self._request_checks = request_checks or {}
        self._default_group = default_group
        self._default_max_tokens = default_max_tokens
        self._seen_ids: dict[str, int] = {}

    def validate(self, line_no: int, raw: bytes | str | dict) -> JobSpec | Problem:
        if isinstance(raw, dict):
            data: Any = raw
        else:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                return Problem(line_no, "invalid_json", f"line {line_no}: {_json_problem(raw, exc)}")
        if not isinstance(data, dict):
            return Problem(
                line_no, "invalid_request", f"line {line_no}: expected a JSON object, got {type(data).__name__}"
            )
        if needs_check(raw, data):
            unstorable = find_unstorable(data)
            if unstorable is not None:
                unstorable = replace(unstorable, path=_line_path(data, unstorable.path))
                code = "invalid_custom_id" if unstorable.path == "custom_id" else "invalid_request"
                return Problem(line_no, code, f"line {line_no}: {unstorable.describe()}",
                               unstorable.path or None)
        try:
            return self._spec(line_no, data)
        except _Refused as refused:
            return Problem(line_no, refused.code, f"line {line_no}: {refused}", refused.param)

    def storable_id_for_invalid(self, line_no: int, raw: bytes | str | dict) -> str | None:
        """The line's own custom_id if it can name the failed job stored for it (skip-invalid);
        None when it has no usable one (``generated_id`` names it later)."""
        data = raw
        if not isinstance(raw, dict):
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                data = None
        candidate = data.get("custom_id") if isinstance(data, dict) else None
        if (
            not isinstance(candidate, str) or not candidate or not _storable_text(candidate)
            or len(candidate) > MAX_CUSTOM_ID_LENGTH or candidate in self._seen_ids
        ):
            return None
        self._seen_ids[candidate] = line_no
        return candidate

    def generated_id(self, line_no: int) -> str:
        """A custom_id for a line without one: ``line-N``, unless a line of the input uses it.

        Call only after every line was validated, so no id given later can collide with it.
        """
        custom_id, suffix = f"line-{line_no}", 1
        while custom_id in self._seen_ids:
            suffix += 1
            custom_id = f"line-{line_no}-{suffix}"
        self._seen_ids[custom_id] = line_no
        return custom_id

    def _spec(self, line_no: int, data: dict) -> JobSpec:
        custom_id = self._custom_id(line_no, data)
        priority = None
        if "priority" in data:
            try:
                priority = parse_priority(data["priority"])
            except ValueError as exc:
                raise _Refused("invalid_priority", str(exc), "priority") from None
        body, endpoint = self._body(data)
        self._check_endpoint(endpoint)
        if endpoint == EMBEDDINGS:
            self._check_common(body)
            if (problem := embeddings_problem(body)) is not None:
                raise _Refused("invalid_request", *problem)
        else:
            self._check_body(body)
        group = body.pop("model", None) or self._default_group
        if not group:
            raise _Refused(
                "missing_model",
                "no model group: set body.model, pass --model, or set dispatcher_settings.default_model",
                "body.model",
            )
        if not isinstance(group, str) or group not in self._groups:
            raise _Refused(
                "unknown_model",
                f"unknown model group '{group}'; the config defines: {', '.join(sorted(self._groups))}",
                "body.model",
            )
        check = self._request_checks.get(group)
        if check is not None and (problem := check(body, endpoint)):
            # Refused now, not by the provider an hour into the batch.
            raise _Refused("invalid_request", problem, problem.split(":", 1)[0])
        try:
            compact = orjson.dumps(body).decode()
        except orjson.JSONEncodeError as exc:  # dicts from the Python API: sets, bytes, cycles...
            raise _Refused("invalid_body", f"the request cannot be written as JSON: {exc}", "body") from None
        if custom_id is not None:
            self._seen_ids[custom_id] = line_no
        if self.endpoint is None:
            self.endpoint, self._endpoint_line = endpoint, line_no
        if endpoint == EMBEDDINGS:  # input tokens only: no output is ever booked or reserved
            return JobSpec(line_no, custom_id, group, compact, priority, estimate_input_tokens(body), 0,
                           endpoint=EMBEDDINGS)
        return JobSpec(
            line=line_no,
            custom_id=custom_id,
            model_group=group,
            body=compact,
            priority=priority,
            est_prompt_tokens=estimate_prompt_tokens(body),
            est_completion_tokens=requested_completion_tokens(body, self._default_max_tokens),
        )

    def _check_endpoint(self, endpoint: str) -> None:
        if self.endpoint is None or endpoint == self.endpoint:
            return
        source = (f"set by line {self._endpoint_line}" if self._endpoint_line is not None
                  else "given when the batch was created")
        raise _Refused(
            "invalid_url",
            f"url {endpoint} differs from the batch's endpoint {self.endpoint} ({source}); every "
            "line of a batch must use the same url: submit the others as a batch of their own",
            "url",
        )

    def _custom_id(self, line_no: int, data: dict) -> str | None:
        if "custom_id" not in data or data["custom_id"] is None:
            return None  # named by generated_id after the whole input was read
        custom_id = data["custom_id"]
        if not isinstance(custom_id, str) or not custom_id:
            raise _Refused("invalid_custom_id", "custom_id must be a non-empty string", "custom_id")
        if not _storable_text(custom_id):
            raise _Refused(
                "invalid_custom_id", "custom_id must be text the database can store "
                "(no NUL character, no unpaired surrogate)", "custom_id",
            )
        if len(custom_id) > MAX_CUSTOM_ID_LENGTH:
            raise _Refused(
                "invalid_custom_id",
                f"custom_id is longer than {MAX_CUSTOM_ID_LENGTH} characters",
                "custom_id",
            )
        first = self._seen_ids.get(custom_id)
        if first is not None:
            raise _Refused(
                "duplicate_custom_id",
                f"custom_id '{custom_id}' was already used on line {first}",
                "custom_id",
            )
        return custom_id

    def _body(self, data: dict) -> tuple[dict, str]:
        """The request body (a copy) and the endpoint it is for."""
        if "body" in data or "url" in data or "method" in data:
            method = data.get("method", "POST")
            if not isinstance(method, str) or method.upper() != "POST":
                raise _Refused("invalid_method", f"method must be POST, got {method!r}", "method")
            url = data.get("url", CHAT_COMPLETIONS)
            endpoint = endpoint_of_url(url)
            if endpoint is None:
                raise _Refused(
                    "invalid_url",
                    f"url {url!r} is not served; use one of: {', '.join(SERVED_ENDPOINTS)}",
                    "url",
                )
            extra = sorted(set(data) - ENVELOPE_KEYS)
            if extra:
                raise _Refused(
                    "invalid_request",
                    f"unexpected top-level key(s) {', '.join(extra)}; request fields go inside body",
                    extra[0],
                )
            body = data.get("body")
            if not isinstance(body, dict):
                raise _Refused("invalid_body", "body must be a JSON object", "body")
            return dict(body), endpoint
        return {k: v for k, v in data.items() if k not in ("custom_id", "priority")}, CHAT_COMPLETIONS

    def _check_common(self, body: dict) -> None:
        for key, why in FORBIDDEN_BODY_KEYS.items():
            if key in body:
                raise _Refused("forbidden_field", f"body.{key} is not allowed: {why}", f"body.{key}")
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise _Refused("unknown_model", "body.model must be a string naming a model group", "body.model")

    def _check_body(self, body: dict) -> None:
        """A chat-completions body."""
        self._check_common(body)
        if body.get("stream") is True:
            raise _Refused(
                "invalid_request", "stream: true is not supported for batch requests", "body.stream"
            )
        messages = body.get("messages")
        if messages is None and "input" in body:
            # Cookbook embeddings lines: {"model": "text-embedding-3-small", "input": "..."}.
            raise _Refused("invalid_request", "this request has 'input' and no 'messages': an "
                           f"embeddings request needs url {EMBEDDINGS} (the batch form: custom_id, "
                           "method, url, body)", "body.input")
        if messages is None and "prompt" in body:
            raise _Refused("invalid_request", "legacy completions ('prompt') are not supported; send "
                           "the prompt as body.messages, e.g. [{\"role\": \"user\", \"content\": ...}]",
                           "body.prompt")
        if not isinstance(messages, list) or not messages:
            raise _Refused(
                "missing_messages", "body.messages must be a non-empty list", "body.messages"
            )
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise _Refused(
                    "invalid_messages",
                    f"body.messages[{index}] must be an object with a 'role'",
                    f"body.messages[{index}]",
                )
        for key in ("max_tokens", "max_completion_tokens"):
            value = body.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise _Refused("invalid_request", f"body.{key} must be a positive integer", f"body.{key}")


def _line_path(data: dict, path: str) -> str:
    """A path in the short form named as the other messages name it: ``body.messages[0]``."""
    if not path or {"body", "url", "method"} & data.keys():
        return path  # the OpenAI batch form: the path already starts at custom_id or body
    first = path.split(".", 1)[0].split("[", 1)[0]
    if first in ("custom_id", "priority"):
        return path
    return f"body{path}" if path.startswith("[") else f"body.{path}"


def _storable_text(text: str) -> bool:
    """False for strings PostgreSQL text cannot hold (NUL) or UTF-8 cannot encode (lone
    surrogates, possible in dicts from the Python API)."""
    if NUL in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def invalid_line_text(raw: bytes | str | dict) -> str:
    """A refused line as text to store with its failed job (--skip-invalid): NUL characters
    and undecodable bytes replaced, so the row can always be written."""
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", "replace")
    elif isinstance(raw, str):
        text = raw
    else:
        try:
            text = json.dumps(raw, default=repr)
        except (RecursionError, ValueError):  # nested too deep, or a cycle
            text = "(a request nested too deep to store)"
    text = text.replace(NUL, "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text


class _Refused(Exception):
    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.code = code
        self.param = param
