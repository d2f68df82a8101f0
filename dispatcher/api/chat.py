"""``POST /v1/chat/completions``: one completion through the same queue as batches, with the
same priority rules, answered with the provider's body once it is done.

The request becomes a one-line batch of kind ``completion`` owned by the caller (``priority``
from the body or the ``X-Priority`` header, 0-9 or a name; by default the key's default), so it
is claimed by priority, rate-limited, retried and billed like any batch line; its id is in the
answer's ``x-dispatcher-batch-id`` header. It takes the awaited path (client/awaited.py,
api/awaiting.py): stored with the requests that arrive with it in one transaction, workers
woken by a signal, its result written at once and announced, so the route wakes without
polling. A client that hangs up cancels the request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from dispatcher.api.auth import Caller, authenticated
from dispatcher.api.awaiting import CompletionDesk
from dispatcher.api.completion_errors import failure_response
from dispatcher.api.errors import ApiError
from dispatcher.client.export import error_line
from dispatcher.errors import InputError
from dispatcher.store.tables import JobStatus

router = APIRouter(prefix="/v1", tags=["chat"])

STREAM_REFUSED = (
    "stream: true is not supported: answers come through a queue and are returned whole. Send "
    "the request without stream (or with stream: false) and read the complete answer; for many "
    "requests, upload a JSONL file and create a batch (POST /v1/files, POST /v1/batches)"
)
# Looks at SQL in case an announcement was lost (Redis restarted): rare, so slow.
FALLBACK_FIRST_LOOK_S = 0.5
FALLBACK_LONGEST_LOOK_S = 2.0
BATCH_ID_HEADER = "x-dispatcher-batch-id"


class ChatRequest(BaseModel):
    """A chat-completions body; fields other than these go to the provider as they are."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200, description="a model group (GET /v1/models)")
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool | None = None
    priority: StrictInt | str | None = Field(
        default=None, description="ours: 0 (most urgent) to 9 or a name; or the X-Priority header",
    )


def _provider_body(request: ChatRequest) -> dict[str, Any]:
    body = request.model_dump(exclude_unset=True)
    body.pop("priority", None)
    body.pop("stream", None)
    return body


@router.post("/chat/completions")
async def chat_completions(
    chat: ChatRequest,
    request: Request,
    caller: Caller = Depends(authenticated),
    x_priority: str | None = Header(default=None, description="0 (most urgent) to 9 or a name"),
) -> Response:
    client = request.app.state.client
    if chat.stream:
        raise ApiError(400, STREAM_REFUSED, param="stream", code="stream_not_supported")
    if chat.model not in client.deployments.groups:
        raise ApiError(404, f"the model group '{chat.model}' does not exist; GET /v1/models lists them",
                       param="model", code="model_not_found")
    caller.check_model(chat.model)
    asked = chat.priority if chat.priority is not None else x_priority
    priority = caller.priority(asked, client.settings.default_priority,
                               "priority" if chat.priority is not None else "X-Priority")
    cost_cap = caller.cost_cap(None)
    try:
        awaited = client.prepare_completion(_provider_body(chat), priority=priority, owner=caller.owner,
                                            max_cost=cost_cap)
    except InputError as refused:
        problem = refused.problems[0] if refused.problems else None
        message = problem.message.removeprefix("line 1: ") if problem else str(refused)
        param = problem.param.removeprefix("body.") if problem and problem.param else None
        raise ApiError(400, message, param=param, code=problem.code if problem else "invalid_request") from None
    _check_cost_cap(client, awaited, cost_cap, chat.model)
    batch_id = awaited.batch_id
    desk = CompletionDesk.of(request.app)
    ended = desk.listen(batch_id)
    try:
        await desk.store(awaited)
        row = await _wait(request, client, batch_id, ended, client.settings.api.completion_timeout_s)
    finally:
        desk.forget(batch_id)
    headers = {BATCH_ID_HEADER: batch_id}
    if row.status == JobStatus.SUCCEEDED and row.response is not None:
        # The provider's body as stored (it was parsed before it was stored): no copy made.
        return Response(row.response, media_type="application/json", headers=headers)
    return failure_response(orjson.loads(error_line(row)), headers)


def _check_cost_cap(client, awaited, cost_cap: float | None, group: str) -> None:
    """A key's cost ceiling caps each of its batches, and a completion is a batch of one: a
    batch's first call always starts (nothing is spent yet), so a completion whose own
    estimate is over the ceiling is refused here, before it is stored or sent."""
    if cost_cap is None:
        return
    estimate = client.completion_estimate(awaited)
    if estimate is not None and estimate > cost_cap:
        raise ApiError(
            429, f"this request would cost at least {estimate:.6g} USD (its prompt and max_tokens at the "
            f"cheapest price in '{group}'), over this key's cost ceiling of {cost_cap:g} USD per batch or "
            "completion; ask for fewer max_tokens, or use a key with a higher --max-cost",
            code="budget_exceeded", headers={"x-should-retry": "false"},
        )


async def _wait(request: Request, client, batch_id: str, ended: asyncio.Future, timeout_s: float):
    """The ended job row; 504 after ``timeout_s`` (the request stays queued). The desk
    resolves ``ended`` when the worker announces the end; SQL is read here only as a fallback."""
    deadline = time.monotonic() + timeout_s
    pause = FALLBACK_FIRST_LOOK_S
    while True:
        try:
            look_in = min(pause, max(0.0, deadline - time.monotonic()))
            return await asyncio.wait_for(asyncio.shield(ended), look_in)
        except TimeoutError:
            pause = min(pause * 2, FALLBACK_LONGEST_LOOK_S)
        row = (await run_in_threadpool(client.completion_results, [batch_id])).get(batch_id)
        if row is not None:
            return row
        if await request.is_disconnected():
            await run_in_threadpool(client.cancel, batch_id)
            raise ApiError(400, "the client went away; the request was cancelled", code="client_disconnected")
        if time.monotonic() >= deadline:
            raise ApiError(
                504, f"no answer within {timeout_s:g}s (dispatcher_settings.api.completion_timeout_s); the "
                f"request keeps its place in the queue as batch {batch_id} (GET /v1/batches/{batch_id})",
                code="completion_timeout", headers={"x-should-retry": "false", BATCH_ID_HEADER: batch_id},
            )
