"""``/v1/batches``: create a batch from an uploaded file, retrieve, list and cancel, as the
openai SDK calls them. Our own options come through the SDK's ``extra_body``: ``priority``,
``model`` (for lines that name none), ``max_cost``, ``weight``, ``not_before``,
``idempotency_key``, ``via`` (the route).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from dispatcher.api.auth import Caller, authenticated
from dispatcher.api.batch_input import forbidden_request, other_endpoint
from dispatcher.api.batch_objects import batch_object
from dispatcher.api.errors import ApiError
from dispatcher.api.pagination import cursor_page
from dispatcher.api.refused_batch import record_refused_batch
from dispatcher.client.batch_info import BatchInfo
from dispatcher.client.submit import default_group
from dispatcher.durations import parse_duration
from dispatcher.errors import InputError, NotFoundError
from dispatcher.intake.validate import SERVED_ENDPOINTS
from dispatcher.store.tables import BatchStatus

router = APIRouter(prefix="/v1/batches", tags=["batches"])


class BatchCreate(BaseModel):
    """The body of ``POST /v1/batches``: OpenAI's fields, then ours."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(min_length=1, max_length=64)
    endpoint: str = Field(max_length=200)
    completion_window: str = Field(default="24h", max_length=20, description="24h, or any duration like 1h or 7d")
    metadata: dict[str, str] | None = None
    output_expires_after: dict[str, Any] | None = Field(
        default=None, description="accepted; output files are views of the results and do not expire"
    )
    priority: StrictInt | str | None = Field(default=None, description="0 (most urgent) to 9, or urgent/high/normal/low/bulk")
    model: str | None = Field(default=None, max_length=200, description="model group for lines that name none")
    max_cost: float | None = Field(default=None, gt=0, description="cost cap in USD")
    weight: float | None = Field(default=None, gt=0, description="share among batches of one priority")
    not_before: float | str | None = Field(default=None, description="Unix seconds or ISO 8601: start no earlier")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    via: Literal["realtime", "provider-batch", "auto"] | None = Field(
        default=None, description="route: realtime calls, the provider's batch API (half price, within "
        "24 h), or auto (provider-batch for low/bulk priority with a window of at least 24h)",
    )


def _batch_not_found(batch_id: str) -> ApiError:
    return ApiError(404, f"no batch with id '{batch_id[:80]}'", param="batch_id", code="batch_not_found")


def _check_request(body: BatchCreate, caller: Caller, client) -> int:
    """Everything that needs no file read; returns the priority the batch gets."""
    if body.endpoint not in SERVED_ENDPOINTS:
        raise ApiError(400, f"endpoint '{body.endpoint[:80]}' is not served here; batches run "
                       f"{', '.join(SERVED_ENDPOINTS)}", param="endpoint", code="unsupported_endpoint")
    try:
        window_s = parse_duration(body.completion_window)
    except ValueError as exc:
        raise ApiError(400, f"completion_window: {exc}", param="completion_window",
                       code="invalid_completion_window") from None
    if window_s <= 0:
        raise ApiError(400, "completion_window must be longer than zero, e.g. 24h", param="completion_window",
                       code="invalid_completion_window")
    if body.model is not None:
        if body.model not in client.deployments.groups:
            raise ApiError(400, f"model: unknown model group '{body.model}'", param="model", code="model_not_found")
        caller.check_model(body.model)
    return caller.priority(body.priority, client.settings.default_priority)


def _create(client, caller: Caller, body: BatchCreate, priority: int) -> BatchInfo:
    """Read the input file into a batch (in a worker thread: it reads and writes SQL)."""
    try:
        file = client.file(body.input_file_id, owner=caller.list_owner)
    except NotFoundError:
        raise ApiError(404, f"no file with id '{body.input_file_id[:80]}'", param="input_file_id",
                       code="file_not_found") from None
    if file.purpose != "batch":
        raise ApiError(400, f"file {file.id} has purpose '{file.purpose}'; a batch needs a file uploaded "
                       "with purpose=batch", param="input_file_id", code="invalid_file_purpose")
    groups = client.deployments.groups
    with client.open_file(file.id, owner=caller.list_owner) as source:
        mismatch = other_endpoint(source, body.endpoint)
    if mismatch is not None:
        raise ApiError(400, mismatch, param="endpoint", code="endpoint_mismatch")
    with client.open_file(file.id, owner=caller.list_owner) as source:
        found = forbidden_request(
            source, caller, groups=set(groups),
            default_group=default_group(body.model, client.settings.default_model, groups),
        )
    if found is not None:
        message, param = found
        raise ApiError(403, message, param=param, code=f"{param}_not_allowed")
    with client.open_file(file.id, owner=caller.list_owner) as source:
        try:
            submitted = client.submit(
                source, owner=caller.owner, input_file_id=file.id, priority=priority, model=body.model,
                max_cost=caller.cost_cap(body.max_cost), weight=body.weight or 1.0,
                not_before=body.not_before, idempotency_key=body.idempotency_key,
                metadata=body.metadata or {}, completion_window=body.completion_window, via=body.via,
            )
        except InputError as refused:
            batch_id = record_refused_batch(
                client.database, refused, owner=caller.owner, input_file_id=file.id,
                input_name=file.filename, completion_window=body.completion_window,
                priority=priority, model=body.model, metadata=body.metadata,
            )
            return client.status(batch_id)
    return client.status(submitted.batch_id)


@router.post("")
async def create_batch(body: BatchCreate, request: Request, caller: Caller = Depends(authenticated)) -> dict[str, Any]:
    """A batch from an uploaded file. A file with bad lines gives a batch that is ``failed``,
    with ``errors.data`` naming each line."""
    client = request.app.state.client
    priority = _check_request(body, caller, client)
    info = await run_in_threadpool(_create, client, caller, body, priority)
    return batch_object(info)


@router.get("")
async def list_batches(
    request: Request,
    after: str | None = Query(None, max_length=64),
    limit: int = Query(20, ge=1, le=100),
    caller: Caller = Depends(authenticated),
) -> dict[str, Any]:
    """The caller's batches (the admin's: every batch), newest first. Chat completions are
    one-line batches inside (each answer names its own in ``x-dispatcher-batch-id``), but not
    batches to the caller: they are left out, as OpenAI's list has none."""
    client = request.app.state.client
    try:
        found = await run_in_threadpool(
            lambda: client.list_batches(limit=limit + 1, owner=caller.list_owner, after=after, kind="batch")
        )
    except NotFoundError:
        raise ApiError(400, f"after: no batch with id '{(after or '')[:80]}'", param="after",
                       code="invalid_cursor") from None
    return cursor_page([batch_object(info) for info in found], limit)


async def _visible_batch(request: Request, caller: Caller, batch_id: str) -> BatchInfo:
    client = request.app.state.client
    try:
        return await run_in_threadpool(lambda: client.status(batch_id, owner=caller.list_owner))
    except NotFoundError:
        raise _batch_not_found(batch_id) from None


@router.get("/{batch_id}")
async def retrieve_batch(batch_id: str, request: Request, caller: Caller = Depends(authenticated)) -> dict[str, Any]:
    return batch_object(await _visible_batch(request, caller, batch_id))


@router.post("/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request, caller: Caller = Depends(authenticated)) -> dict[str, Any]:
    """Queued requests will not run; those in flight finish (``cancelling``, then ``cancelled``).
    Cancelling a cancelled batch (one its cost cap stopped too) returns it; a batch that ended
    otherwise answers 409."""
    info = await _visible_batch(request, caller, batch_id)
    if info.done:
        if info.openai_status == BatchStatus.CANCELLED:
            return batch_object(info)
        raise ApiError(409, f"batch {info.id} is {info.openai_status}; only a batch still running can be "
                       "cancelled", param="batch_id", code="batch_not_cancellable")
    client = request.app.state.client
    info = await run_in_threadpool(lambda: client.cancel(batch_id, owner=caller.list_owner))
    return batch_object(info)
