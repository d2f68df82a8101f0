"""Anthropic's Message Batches API as the mock speaks it.

``POST /v1/messages/batches`` (``{requests: [{custom_id, params}]}``, at most 100,000 requests
and 256 MB: ``--batch-max-lines``, ``--batch-max-bytes``), ``GET /v1/messages/batches/{id}``,
``GET /v1/messages/batches`` (newest first; ``limit``, ``after_id``, ``before_id``),
``POST /v1/messages/batches/{id}/cancel``, ``GET /v1/messages/batches/{id}/results`` (JSONL of
``{custom_id, result: {type: succeeded|errored|canceled|expired, message|error}}``),
``DELETE /v1/messages/batches/{id}`` (an ended batch only).

Keys and ``anthropic-version`` are checked as on ``/v1/messages``; each ``params`` is checked
as that route checks a body (``anthropic_checks.py``, a 400 naming ``requests.N.params``), and
answered as it would answer (``AnthropicMessages.plan_body``) when the batch is created;
``--batch-line-error-rate`` makes that fraction ``errored`` (500 ``api_error`` or 429
``rate_limit_error``). The clock (``batch_clock.py``) reveals them: ``in_progress`` until
``--batch-delay-s``, then ``ended`` with ``results_url``; ``--batch-expire`` ends it with half
the requests done and the rest ``expired``; a cancel goes ``canceling`` and ends with the rest
``canceled``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from dispatcher.mockserver.anthropic_api import AnthropicMessages, error_body
from dispatcher.mockserver.anthropic_checks import request_problem
from dispatcher.mockserver.batch_clock import DAY_S, BatchClock
from dispatcher.mockserver.pipeline import JSON, Plan, respond
from dispatcher.mockserver.state import STATE, MockState

MAX_REQUESTS = 100_000
YIELD_EVERY = 1000  # lines answered between yields to the event loop
MAX_BYTES = 256 * 1024 * 1024
MAX_PAGE = 1000
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MESSAGES = AnthropicMessages()


@dataclass(slots=True)
class RequestResult:
    """One request's answer: ``succeeded`` with a Message or ``errored`` with an error body."""

    custom_id: str
    succeeded: bool
    body: bytes  # the Message, or Anthropic's error response, as JSON


@dataclass
class MessageBatch:
    id: str
    clock: BatchClock
    results: list[RequestResult]
    _succeeded: array = field(default_factory=lambda: array("q", [0]))  # running count, in order

    def __post_init__(self) -> None:
        for result in self.results:
            self._succeeded.append(self._succeeded[-1] + result.succeeded)

    def view(self, now: float, root_url: str) -> dict[str, Any]:
        clock = self.clock
        ended = clock.ended(now)
        done = clock.done(now)
        total = len(self.results)
        succeeded = self._succeeded[done]
        not_run = total - done if ended else 0
        canceled = not_run if clock.cancelled_at is not None else 0
        status = "ended" if ended else ("canceling" if clock.cancelled_at is not None else "in_progress")
        ended_at = clock.cancel_settles_at() if clock.cancelled_at is not None else clock.ends_at()
        return {
            "id": self.id, "type": "message_batch", "processing_status": status,
            "request_counts": {"processing": total - done - not_run, "succeeded": succeeded,
                               "errored": done - succeeded, "canceled": canceled,
                               "expired": not_run - canceled},
            "created_at": _rfc3339(clock.wall), "expires_at": _rfc3339(clock.wall + DAY_S),
            "ended_at": _rfc3339(clock.wall + ended_at - clock.started) if ended else None,
            "cancel_initiated_at": (_rfc3339(clock.wall + clock.cancelled_at - clock.started)
                                    if clock.cancelled_at is not None else None),
            "archived_at": None,
            "results_url": f"{root_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }

    def results_jsonl(self, now: float) -> bytes:
        done = self.clock.done(now)
        left = {"type": "canceled" if self.clock.cancelled_at is not None else "expired"}
        lines = []
        for index, result in enumerate(self.results):
            if index >= done:
                outcome: dict[str, Any] = left
            elif result.succeeded:
                outcome = {"type": "succeeded", "message": orjson.Fragment(result.body)}
            else:
                outcome = {"type": "errored", "error": orjson.Fragment(result.body)}
            lines.append(orjson.dumps({"custom_id": result.custom_id, "result": outcome}))
        return b"\n".join(lines) + b"\n" if lines else b""


def _rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat().replace("+00:00", "Z")


class MessageBatchStore:
    def __init__(self) -> None:
        self._prefix = f"msgbatch_mock{os.urandom(4).hex()}"
        self._ids = itertools.count(1)
        self.batches: dict[str, MessageBatch] = {}

    def new_id(self) -> str:
        return f"{self._prefix}{next(self._ids):06x}"


MESSAGE_BATCHES = web.AppKey("anthropic_batches", MessageBatchStore)


def requests_problem(body: Any, max_requests: int) -> str | None:
    """What Anthropic would refuse in a create body, in its words; None if it is fine."""
    if not isinstance(body, dict) or "requests" not in body:
        return "requests: Field required"
    extra = sorted(set(body) - {"requests"})
    if extra:
        return f"{extra[0]}: Extra inputs are not permitted"
    requests = body["requests"]
    if not isinstance(requests, list) or not requests:
        return "requests: List should have at least 1 item after validation"
    if len(requests) > max_requests:
        return f"requests: List should have at most {max_requests} items after validation, not {len(requests)}"
    seen: set[str] = set()
    for index, item in enumerate(requests):
        if not isinstance(item, dict) or "custom_id" not in item or "params" not in item:
            return f"requests.{index}: each request needs 'custom_id' and 'params'"
        custom_id = item["custom_id"]
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            return f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        if custom_id in seen:
            return f"requests.{index}.custom_id: Duplicate custom_id '{custom_id}'; custom_id must be unique"
        seen.add(custom_id)
        params = item["params"]
        problem = request_problem(params)
        if problem is not None:
            return f"requests.{index}.params: {problem}"
        if params.get("stream"):
            return f"requests.{index}.params.stream: streaming is not supported in batches"
    return None


async def answer_requests(requests: list[dict[str, Any]], request: web.Request,
                    state: MockState) -> tuple[list[RequestResult], list[str]]:
    """Each request's answer from the Messages route's code, and its prompt's fingerprint."""
    rate = state.options.batch_line_error_rate
    rng = state.rng
    results, fingerprints = [], []
    for index, item in enumerate(requests):
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)  # ~25 us a request: let other calls in between
        request_id = state.request_id()
        plan = MESSAGES.plan_body(item["params"], request, state, {"request-id": request_id})
        custom_id = item["custom_id"]
        if not isinstance(plan, Plan):  # a directive the route refuses with its own error
            results.append(RequestResult(custom_id, False, plan.body))
            fingerprints.append(custom_id)
            continue
        fingerprints.append(plan.fingerprint)
        if rate and rng.random() < rate:
            status = 429 if rng.random() < 0.5 else 500
            message = "Rate limited while processing the batch (mock)" if status == 429 else "Internal server error"
            results.append(RequestResult(custom_id, False, error_body(status, message, request_id)))
        elif plan.status == 200 and plan.content_type == JSON:
            if plan.on_admit is not None:
                plan.on_admit()  # prompt caching sees batch requests too
            results.append(RequestResult(custom_id, True, plan.body))
        elif plan.content_type == JSON:
            results.append(RequestResult(custom_id, False, plan.body))
        else:  # the invalid_json directive: no Message to give
            results.append(RequestResult(custom_id, False, error_body(500, "Internal server error", request_id)))
    return results, fingerprints


def _start(request: web.Request) -> tuple[MockState, dict[str, str], web.Response | None]:
    state = request.app[STATE]
    headers = MESSAGES.first_headers(state.request_id())
    return state, headers, MESSAGES.check_headers(request, state, headers)


def _root_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def create(request: web.Request) -> web.Response:
    """``POST /v1/messages/batches``."""
    state, headers, refused = _start(request)
    if refused is not None:
        return refused
    options = state.options
    raw = await request.read()
    max_bytes = options.batch_max_bytes or MAX_BYTES
    if len(raw) > max_bytes:
        return MESSAGES.error(413, f"Request exceeds the maximum size of {max_bytes} bytes for a batch", headers)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return MESSAGES.error(400, "There was an issue with the request body: it is not JSON", headers)
    problem = requests_problem(body, options.batch_max_lines or MAX_REQUESTS)
    if problem is not None:
        return MESSAGES.error(400, problem, headers)
    results, fingerprints = await answer_requests(body["requests"], request, state)
    store = request.app[MESSAGE_BATCHES]
    batch = MessageBatch(store.new_id(), BatchClock(options.batch_delay_s, len(results), options.batch_expire),
                         results)
    store.batches[batch.id] = batch
    state.stats.batches["anthropic"].created(batch.id, fingerprints)
    if state.options.create_reply_delay_s:
        await asyncio.sleep(state.options.create_reply_delay_s)
    return respond(200, orjson.dumps(batch.view(time.monotonic(), _root_url(request))), headers)


def _lookup(request: web.Request) -> tuple[MessageBatch | web.Response, dict[str, str]]:
    state, headers, refused = _start(request)
    if refused is not None:
        return refused, headers
    batch_id = request.match_info["batch_id"]
    batch = request.app[MESSAGE_BATCHES].batches.get(batch_id)
    if batch is None:
        return MESSAGES.error(404, f"No message batch with id '{batch_id}'", headers), headers
    return batch, headers


async def retrieve(request: web.Request) -> web.Response:
    """``GET /v1/messages/batches/{id}``."""
    batch, headers = _lookup(request)
    if isinstance(batch, web.Response):
        return batch
    return respond(200, orjson.dumps(batch.view(time.monotonic(), _root_url(request))), headers)


async def cancel(request: web.Request) -> web.Response:
    """``POST /v1/messages/batches/{id}/cancel``: ``canceling`` until calls in flight end."""
    batch, headers = _lookup(request)
    if isinstance(batch, web.Response):
        return batch
    now = time.monotonic()
    clock = batch.clock
    if clock.cancelled_at is None and not clock.ended(now):
        clock.cancelled_at = now
        request.app[STATE].stats.batches["anthropic"].cancels += 1
    # Canceling an ended batch changes nothing and answers it as it is, as Anthropic does.
    return respond(200, orjson.dumps(batch.view(now, _root_url(request))), headers)


async def results(request: web.Request) -> web.Response:
    """``GET /v1/messages/batches/{id}/results``: JSONL, once the batch has ended."""
    batch, headers = _lookup(request)
    if isinstance(batch, web.Response):
        return batch
    now = time.monotonic()
    if not batch.clock.ended(now):
        return MESSAGES.error(404, f"Message batch '{batch.id}' has not ended; its results are not ready", headers)
    return respond(200, batch.results_jsonl(now), headers, "application/x-jsonl")


async def delete(request: web.Request) -> web.Response:
    """``DELETE /v1/messages/batches/{id}``: only once it has ended, as Anthropic requires."""
    batch, headers = _lookup(request)
    if isinstance(batch, web.Response):
        return batch
    if not batch.clock.ended(time.monotonic()):
        return MESSAGES.error(400, f"Message batch '{batch.id}' cannot be deleted before it has ended; "
                              "cancel it first", headers)
    del request.app[MESSAGE_BATCHES].batches[batch.id]
    return respond(200, orjson.dumps({"id": batch.id, "type": "message_batch_deleted"}), headers)


async def listing(request: web.Request) -> web.Response:
    """``GET /v1/messages/batches?limit=&after_id=&before_id=``: newest first."""
    state, headers, refused = _start(request)
    if refused is not None:
        return refused
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        return MESSAGES.error(400, f"limit: Input should be between 1 and {MAX_PAGE}", headers)
    newest_first = list(reversed(request.app[MESSAGE_BATCHES].batches.values()))
    ids = [batch.id for batch in newest_first]
    after, before = request.query.get("after_id"), request.query.get("before_id")
    if before:
        end = ids.index(before) if before in ids else 0
        page, has_more = newest_first[max(0, end - limit):end], end > limit
    else:
        start = ids.index(after) + 1 if after in ids else (len(ids) if after else 0)
        page, has_more = newest_first[start:start + limit], len(ids) > start + limit
    now, root = time.monotonic(), _root_url(request)
    body = {"data": [batch.view(now, root) for batch in page], "has_more": has_more,
            "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None}
    return respond(200, orjson.dumps(body), headers)


def add_routes(app: web.Application, prefix: str) -> None:
    app.router.add_post(f"{prefix}/messages/batches", create)
    app.router.add_get(f"{prefix}/messages/batches", listing)
    app.router.add_get(f"{prefix}/messages/batches/{{batch_id}}", retrieve)
    app.router.add_delete(f"{prefix}/messages/batches/{{batch_id}}", delete)
    app.router.add_post(f"{prefix}/messages/batches/{{batch_id}}/cancel", cancel)
    app.router.add_get(f"{prefix}/messages/batches/{{batch_id}}/results", results)
