"""The OpenAI API as the mock speaks it: ``/v1/chat/completions`` and ``/v1/embeddings``.

``OpenAIShape`` is the envelope (key, error bodies, ``x-ratelimit-*`` headers, 429s);
``ChatCompletions`` and ``Embeddings`` read the body and plan the answer. Azure reuses both
operations with its own envelope (``azure.py``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatcher.mockserver.embeddings import EmbeddingsRequest, embeddings_answer
from dispatcher.mockserver.limits import Charge, Decision, RateLimits, format_duration, retry_after_headers
from dispatcher.mockserver.pipeline import JSON, Plan, read_json_object, respond
from dispatcher.mockserver.state import STATE, MockState
from dispatcher.providers.mock.replies import MockReply, directives, error_body, fingerprint, mock_reply
from dispatcher.tokens import estimate_prompt_tokens, requested_completion_tokens

_LIMIT_NAMES = {"requests": "requests", "tokens": "tokens", "input_tokens": "input tokens",
                "output_tokens": "output tokens"}


class OpenAIShape:
    """OpenAI's envelope: Bearer key, ``{"error": {message, type, param, code}}`` bodies."""

    name = "openai"

    def first_headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": request_id}

    def check_endpoint(self, request: web.Request, headers: dict[str, str]) -> web.Response | None:
        """A refusal of the URL itself (Azure: no api-version), or None."""
        return None

    def authenticate(self, request: web.Request, state: MockState, headers: dict[str, str]) -> web.Response | None:
        expected = state.options.api_key
        if expected is None:
            return None
        given = request.headers.get("Authorization", "")
        key = given[7:] if given[:7].lower() == "bearer " else given
        if key == expected:
            return None
        # The full key is echoed on purpose: some providers do, and the dispatcher's
        # redaction has to cope with that.
        message = (
            f"Incorrect API key provided: {key}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return self.error(401, message, "invalid_api_key", "invalid_request_error", headers)

    def check_body(self, body: dict[str, Any], headers: dict[str, str]) -> web.Response | None:
        """A refusal of a parsed body that the shape requires more of, or None."""
        return None

    def key_quoted(self, request: web.Request) -> str:
        """What the ``echo_key`` directive quotes: the header that carried the key."""
        return request.headers.get("Authorization", "(no Authorization header)")

    def model(self, request: web.Request, body: dict[str, Any]) -> str:
        return str(body.get("model") or "mock")

    def error(
        self, status: int, message: str, code: str | None, error_type: str, headers: dict[str, str]
    ) -> web.Response:
        return respond(status, error_body(status, message, code, error_type), headers)

    def adapt_chat(self, body: dict[str, Any], reply: MockReply) -> MockReply:
        """The provider's own touches on a chat answer (Azure: content filtering)."""
        return reply

    def limit_headers(self, decision: Decision, limits: RateLimits) -> dict[str, str]:
        """``x-ratelimit-*`` for rpm and tpm when set; ``retry-after(-ms)`` on a refusal."""
        headers = limits.calls.headers(decision.calls) if limits.calls.limited else {}
        if not decision.admitted:
            headers.update(retry_after_headers(decision.retry_after_s))
        return headers

    def rate_limited(
        self, request: web.Request, decision: Decision, plan: Plan, headers: dict[str, str]
    ) -> web.Response:
        limits = request.app[STATE].limits
        kind = decision.limited_by or "requests"
        limit, used = limits.usage_of(kind)
        requested = {"requests": 1, "tokens": plan.charge.tokens, "input_tokens": plan.charge.input,
                     "output_tokens": plan.charge.output_budget}[kind]
        per = f"per {limits.window_s:g}s window"
        wait = format_duration(decision.retry_after_s)
        name = _LIMIT_NAMES[kind]
        if decision.too_large:
            message = (
                f"Request too large for {plan.model} (mock) on {name} {per}: Limit {limit}, "
                f"Requested {requested}. The input or output tokens must be reduced in order to run "
                "successfully."
            )
        else:
            message = (
                f"Rate limit reached for {plan.model} (mock) on {name} {per}: Limit {limit}, "
                f"Used {used}, Requested {requested}. Please try again in {wait}."
            )
        return self.error(429, message, "rate_limit_exceeded", kind, headers)

    def server_error(self, headers: dict[str, str], detail: str | None = None) -> web.Response:
        if detail:
            return self.error(500, f"The server had an error ({detail}).", None, "server_error", headers)
        return self.error(500, "The server had an error while processing your request (mock).", None,
                          "server_error", headers)

    def overloaded(self, headers: dict[str, str]) -> web.Response:
        return self.error(503, "The server is overloaded or not ready yet (mock).", None, "server_error", headers)


class _Operation:
    """An API operation served in a shape's envelope (the envelope methods pass through)."""

    operation = ""

    def __init__(self, shape: OpenAIShape):
        self.shape = shape
        self.route = f"{shape.name}.{self.operation}"

    def first_headers(self, request_id: str) -> dict[str, str]:
        return self.shape.first_headers(request_id)

    def limit_headers(self, decision: Decision, limits: RateLimits) -> dict[str, str]:
        return self.shape.limit_headers(decision, limits)

    def rate_limited(
        self, request: web.Request, decision: Decision, plan: Plan, headers: dict[str, str]
    ) -> web.Response:
        return self.shape.rate_limited(request, decision, plan, headers)

    def server_error(self, headers: dict[str, str], detail: str | None = None) -> web.Response:
        return self.shape.server_error(headers, detail)

    def overloaded(self, headers: dict[str, str]) -> web.Response:
        return self.shape.overloaded(headers)

    async def plan(self, request: web.Request, state: MockState, headers: dict[str, str]) -> Plan | web.Response:
        body = await self._body(request, state, headers)
        if isinstance(body, web.Response):
            return body
        return self.plan_body(body, request, state, headers)

    def plan_body(
        self, body: dict[str, Any], request: web.Request, state: MockState, headers: dict[str, str]
    ) -> Plan | web.Response:
        """The answer to a parsed body (also a batch line's, ``openai_batches.py``)."""
        raise NotImplementedError

    async def _body(
        self, request: web.Request, state: MockState, headers: dict[str, str]
    ) -> dict[str, Any] | web.Response:
        """Endpoint and key checks, then the JSON body (a 400 if it is not an object)."""
        shape = self.shape
        refused = shape.check_endpoint(request, headers) or shape.authenticate(request, state, headers)
        if refused is not None:
            return refused
        body = await read_json_object(request)
        if body is None:
            message = "We could not parse the JSON body of your request. The body must be a JSON object (mock)."
            return shape.error(400, message, None, "invalid_request_error", headers)
        return shape.check_body(body, headers) or body


class ChatCompletions(_Operation):
    """``POST .../chat/completions``: the built-in mock reply (``providers/mock/replies.py``)."""

    operation = "chat"

    def plan_body(
        self, body: dict[str, Any], request: web.Request, state: MockState, headers: dict[str, str]
    ) -> Plan | web.Response:
        """The answer to a parsed body (also a batch line's, ``openai_batches.py``)."""
        shape = self.shape
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return shape.error(400, "'messages' must be a non-empty array (mock).", "invalid_messages",
                               "invalid_request_error", headers)
        model = shape.model(request, body)
        found = directives(body)
        echoed = f"You called me with: {shape.key_quoted(request)}" if "echo_key" in found else None
        try:
            reply = mock_reply(body, model=model, fixed_response=echoed,
                               prompt_token_scale=state.options.prompt_token_scale)
            if not 100 <= reply.status <= 599:
                raise ValueError(f"status {reply.status} is not an HTTP status")
            fail_first = int(found["fail_first"] or 1) if "fail_first" in found else 0
            charge = _chat_charge(body, reply.usage)
        except (TypeError, ValueError) as exc:  # a bad directive value, "n": "two", ...
            message = f"The mock could not read this request ({exc})."
            return shape.error(400, message, "invalid_mock_request", "invalid_request_error", headers)
        reply = shape.adapt_chat(body, reply)
        # No usage: a directive's error body (JSON) or the invalid_json directive's HTML page.
        content_type = JSON if reply.usage is not None or reply.status >= 300 else "text/html"
        return Plan(fingerprint(body), model, charge, reply.status, reply.body, reply.usage, content_type,
                    reply.sleep_s, fail_first)


def _chat_charge(body: dict[str, Any], usage: dict[str, int] | None) -> Charge:
    """What a chat request counts against the limits when admitted.

    tpm, like OpenAI: the prompt estimate plus the completion tokens the request allows
    (max_completion_tokens or max_tokens, times n). Without one, the completion tokens this
    reply really uses (0 for scripted errors), so an unbounded request is not charged infinity.
    """
    if usage is not None:
        prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    else:
        prompt, completion = estimate_prompt_tokens(body), 0
    budget = requested_completion_tokens(body, completion)
    return Charge(prompt + budget, prompt, completion, max(budget, completion))


class Embeddings(_Operation):
    """``POST .../embeddings``: deterministic unit vectors (``embeddings.py``)."""

    operation = "embeddings"

    def plan_body(
        self, body: dict[str, Any], request: web.Request, state: MockState, headers: dict[str, str]
    ) -> Plan | web.Response:
        """The answer to a parsed body (also a batch line's, ``openai_batches.py``)."""
        shape = self.shape
        try:
            wanted = EmbeddingsRequest.read(body)
        except ValueError as exc:
            return shape.error(400, str(exc), None, "invalid_request_error", headers)
        model = shape.model(request, body)
        try:
            scripted = wanted.scripted_reply(model)
            if scripted is not None and not 100 <= scripted.status <= 599:
                raise ValueError(f"status {scripted.status} is not an HTTP status")
            fail_first = wanted.fail_first
        except ValueError as exc:
            message = f"The mock could not read this request ({exc})."
            return shape.error(400, message, "invalid_mock_request", "invalid_request_error", headers)
        if scripted is not None and scripted.usage is None:  # a directive's error or broken body
            content_type = JSON if scripted.status >= 300 else "text/html"
            charge = Charge(wanted.tokens, wanted.tokens, 0, 0)
            return Plan(wanted.fingerprint, model, charge, scripted.status, scripted.body, None, content_type,
                        scripted.sleep_s, fail_first)
        data, usage = embeddings_answer(wanted, model, state.options.prompt_token_scale)
        charge = Charge(usage["prompt_tokens"], usage["prompt_tokens"], 0, 0)
        sleep_s = scripted.sleep_s if scripted is not None else 0.0
        return Plan(wanted.fingerprint, model, charge, 200, data, usage, JSON, sleep_s, fail_first)
