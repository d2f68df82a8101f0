"""Azure OpenAI as the mock speaks it: deployment URLs, ``api-key``, Azure's error shapes.

Routes (``{endpoint}`` is the mock's root, as ``azure_endpoint`` / ``api_base``):

``POST /openai/deployments/{deployment}/chat/completions?api-version=V``
``POST /openai/deployments/{deployment}/embeddings?api-version=V``
    ``api-version`` is required (without it Azure answers 404 ``Resource not found``; a value
    that is not ``YYYY-MM-DD`` or ``YYYY-MM-DD-preview`` gets 400 ``API version not
    supported``). The answer's ``model`` is the body's ``model``, else the deployment name.
``POST /openai/v1/chat/completions``, ``POST /openai/v1/embeddings``
    The v1 surface: no api-version needed, the deployment is the body's ``model``.
``/openai/files``, ``/openai/batches`` (with ``api-version``) and ``/openai/v1/files``,
``/openai/v1/batches``
    Batches, served by ``openai_files.py`` and ``openai_batches.py`` in this dialect; a line's
    ``url`` (and the batch's ``endpoint``) is ``/chat/completions`` or ``/embeddings``.

The key goes in ``api-key: KEY`` or, for Entra ID tokens, ``Authorization: Bearer TOKEN``;
one of them is always required (401 otherwise), and with ``--api-key`` it must be that value.
Chat answers carry Azure's ``prompt_filter_results`` and per-choice ``content_filter_results``.
A prompt containing ``CONTENT_FILTER_TRIGGER`` (any case), or ``[[mock:content_policy]]``, is
refused as Azure's content filter refuses: 400 ``content_filter`` with an ``innererror``
``ResponsibleAIPolicyViolation`` and its ``content_filter_result``. 429s have Azure's body,
``retry-after``, ``retry-after-ms`` and ``x-ratelimit-*``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from dispatcher.mockserver.limits import Decision
from dispatcher.mockserver.openai_api import OpenAIShape
from dispatcher.mockserver.pipeline import Plan, respond
from dispatcher.mockserver.state import MockState
from dispatcher.providers.mock.replies import MockReply, directives

CONTENT_FILTER_TRIGGER = "trigger-content-filter"
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_KEY_REFUSED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your resource."
)
_TOKEN_REFUSED = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_SAFE = {"filtered": False, "severity": "safe"}


def _filter_results(violence: bool = False) -> dict[str, Any]:
    return {
        "hate": _SAFE,
        "jailbreak": {"filtered": False, "detected": False},
        "self_harm": _SAFE,
        "sexual": _SAFE,
        "violence": {"filtered": True, "severity": "medium"} if violence else _SAFE,
    }


CONTENT_FILTER_BODY = orjson.dumps({
    "error": {
        "message": _FILTERED,
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": _filter_results(True)},
    }
})


def azure_error(status: int, code: str, message: str, headers: dict[str, str]) -> web.Response:
    """Azure's own errors (gateway, auth, quota): ``{"error": {"code", "message"}}``."""
    return respond(status, orjson.dumps({"error": {"code": code, "message": message}}), headers)


class AzureShape(OpenAIShape):
    """Azure's envelope around OpenAI's operations; ``v1``: the ``/openai/v1/`` surface."""

    def __init__(self, v1: bool = False):
        self.v1 = v1
        self.name = "azure.v1" if v1 else "azure"

    def first_headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": request_id, "apim-request-id": request_id}

    def check_endpoint(self, request: web.Request, headers: dict[str, str]) -> web.Response | None:
        if self.v1:
            return None
        version = request.query.get("api-version")
        if not version:
            return azure_error(404, "404", "Resource not found", headers)
        if not _API_VERSION.match(version):
            return azure_error(400, "BadRequest", "API version not supported", headers)
        return None

    def authenticate(self, request: web.Request, state: MockState, headers: dict[str, str]) -> web.Response | None:
        expected = state.options.api_key
        key = request.headers.get("api-key")
        if key is not None:
            if key and (expected is None or key == expected):
                return None
            return azure_error(401, "401", _KEY_REFUSED, headers)
        given = request.headers.get("Authorization", "")
        token = given[7:] if given[:7].lower() == "bearer " else ""
        if token and (expected is None or token == expected):
            return None
        if given:
            return azure_error(401, "401", _TOKEN_REFUSED, headers)
        return azure_error(401, "401", _KEY_REFUSED, headers)

    def check_body(self, body: dict[str, Any], headers: dict[str, str]) -> web.Response | None:
        if self.v1 and not body.get("model"):  # the deployment, on this surface
            return self.error(400, "you must provide a model parameter", None, "invalid_request_error", headers)
        return None

    def key_quoted(self, request: web.Request) -> str:
        if "api-key" in request.headers:
            return f"api-key: {request.headers['api-key']}"
        return super().key_quoted(request)

    def model(self, request: web.Request, body: dict[str, Any]) -> str:
        return str(body.get("model") or request.match_info.get("deployment") or "mock")

    def adapt_chat(self, body: dict[str, Any], reply: MockReply) -> MockReply:
        if "content_policy" in directives(body) or _mentions_trigger(body):
            return MockReply(400, CONTENT_FILTER_BODY, reply.sleep_s)
        if reply.usage is None:
            return reply
        answer = orjson.loads(reply.body)
        answer["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": _filter_results()}]
        for choice in answer["choices"]:
            choice["content_filter_results"] = _filter_results()
        return MockReply(reply.status, orjson.dumps(answer), reply.sleep_s, reply.usage)

    def rate_limited(
        self, request: web.Request, decision: Decision, plan: Plan, headers: dict[str, str]
    ) -> web.Response:
        operation = "Embeddings_Create" if request.path.endswith("/embeddings") else "ChatCompletions_Create"
        version = request.query.get("api-version") or "v1"
        which = "call" if decision.limited_by == "requests" else "token"
        wait = headers.get("retry-after", "1")
        message = (
            f"Requests to the {operation} Operation under Azure OpenAI API version {version} have "
            f"exceeded {which} rate limit of your current OpenAI S0 pricing tier (mock). Please retry "
            f"after {wait} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like "
            "to further increase the default rate limit."
        )
        return azure_error(429, "429", message, headers)


def _mentions_trigger(body: dict[str, Any]) -> bool:
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        parts = [content] if isinstance(content, str) else [
            part.get("text") for part in content if isinstance(part, dict)
        ] if isinstance(content, list) else []
        if any(isinstance(text, str) and CONTENT_FILTER_TRIGGER in text.lower() for text in parts):
            return True
    return False
