"""OpenAI's Files API as the mock speaks it, for batches: upload, retrieve, content, delete.

``POST /v1/files`` (multipart ``file`` and ``purpose``), ``GET /v1/files`` (a cursor page:
``purpose``, ``order``, ``limit``, ``after``), ``GET /v1/files/{id}``,
``GET /v1/files/{id}/content`` (the raw bytes), ``DELETE /v1/files/{id}``. Batches write
their output and error files here (purpose ``batch_output``). Files live in memory until
deleted or the server stops (``/mock/reset`` keeps them).

The same handlers serve Azure OpenAI's files (``azure.py``'s shape: ``api-key``, api-version):
``add_routes`` binds a shape to its routes, which the handlers read with ``shape_of``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from dispatcher.mockserver.openai_api import OpenAIShape
from dispatcher.mockserver.pipeline import respond
from dispatcher.mockserver.state import STATE, MockState

PURPOSES = {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}
INPUT_EXPIRES_S = 30 * 24 * 3600  # batch input files expire after 30 days by default


@dataclass(slots=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed",
                "expires_at": self.created_at + INPUT_EXPIRES_S, "status_details": None}


class FileStore:
    """The files uploaded, and those batches wrote."""

    def __init__(self) -> None:
        self._prefix = f"file-mock{os.urandom(4).hex()}"
        self._ids = itertools.count(1)
        self.files: dict[str, StoredFile] = {}

    def add(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        stored = StoredFile(f"{self._prefix}{next(self._ids):06x}", filename, purpose, content, int(time.time()))
        self.files[stored.id] = stored
        return stored


FILES = web.AppKey("openai_files", FileStore)
SHAPE = OpenAIShape()
SHAPE_KEY = "mock_shape"  # request key: the dialect (OpenAI's, Azure's) a route was added with

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def shape_of(request: web.Request) -> OpenAIShape:
    return request.get(SHAPE_KEY, SHAPE)


def bind(handler: Handler, values: dict[str, Any]) -> Handler:
    """``handler`` with ``values`` put in each request first (how a route knows its dialect)."""
    if not values:
        return handler

    async def bound(request: web.Request) -> web.StreamResponse:
        request.update(values)
        return await handler(request)

    return bound


def refused(request: web.Request, state: MockState, headers: dict[str, str]) -> web.Response | None:
    """The dialect's URL and key checks, as on chat (``--api-key``; Azure's api-version)."""
    shape = shape_of(request)
    return shape.check_endpoint(request, headers) or shape.authenticate(request, state, headers)


def not_found(kind: str, object_id: str, headers: dict[str, str]) -> web.Response:
    message = f"No such {kind} object: {object_id}"
    return respond(404, orjson.dumps({"error": {"message": message, "type": "invalid_request_error",
                                                "param": "id", "code": None}}), headers)


def bad_request(message: str, headers: dict[str, str], param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    return respond(400, orjson.dumps(body), headers)


async def upload(request: web.Request) -> web.Response:
    """``POST /v1/files``: a multipart upload of ``file`` with its ``purpose``."""
    state = request.app[STATE]
    headers = shape_of(request).first_headers(state.request_id())
    denied = refused(request, state, headers)
    if denied is not None:
        return denied
    if not request.content_type.startswith("multipart/"):
        return bad_request("The request must be multipart/form-data with 'file' and 'purpose'.", headers)
    form = await request.post()
    purpose = form.get("purpose")
    field = form.get("file")
    if not isinstance(purpose, str) or purpose not in PURPOSES:
        return bad_request(f"Invalid value for 'purpose': {purpose!r}.", headers, "purpose")
    if not isinstance(field, web.FileField):
        return bad_request("'file' is a required property and must be a file.", headers, "file")
    stored = request.app[FILES].add(field.filename or "upload.jsonl", purpose, field.file.read())
    state.stats.batches["openai"].files_uploaded += 1
    if state.options.upload_reply_delay_s:
        await asyncio.sleep(state.options.upload_reply_delay_s)
    return respond(200, orjson.dumps(stored.as_dict()), headers)


def lookup(request: web.Request, what: str, items: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """The item of ``items`` the URL names (``{what}_id``: a File, a Batch), or the refusal or
    404 to answer instead, and the answer's first headers."""
    state = request.app[STATE]
    headers = shape_of(request).first_headers(state.request_id())
    denied = refused(request, state, headers)
    if denied is not None:
        return denied, headers
    item_id = request.match_info[f"{what.lower()}_id"]
    found = items.get(item_id)
    return (found if found is not None else not_found(what, item_id, headers)), headers


def _lookup(request: web.Request) -> tuple[StoredFile | web.Response, dict[str, str]]:
    return lookup(request, "File", request.app[FILES].files)


async def retrieve(request: web.Request) -> web.Response:
    """``GET /v1/files/{id}``."""
    found, headers = _lookup(request)
    if isinstance(found, web.Response):
        return found
    return respond(200, orjson.dumps(found.as_dict()), headers)


async def content(request: web.Request) -> web.Response:
    """``GET /v1/files/{id}/content``: the bytes as uploaded or written."""
    found, headers = _lookup(request)
    if isinstance(found, web.Response):
        return found
    return respond(200, found.content, headers, "application/octet-stream")


async def delete(request: web.Request) -> web.Response:
    """``DELETE /v1/files/{id}``."""
    found, headers = _lookup(request)
    if isinstance(found, web.Response):
        return found
    del request.app[FILES].files[found.id]
    return respond(200, orjson.dumps({"id": found.id, "object": "file", "deleted": True}), headers)


async def listing(request: web.Request) -> web.Response:
    """``GET /v1/files?purpose=&order=&limit=&after=``: a cursor page, newest first by default."""
    state = request.app[STATE]
    headers = shape_of(request).first_headers(state.request_id())
    denied = refused(request, state, headers)
    if denied is not None:
        return denied
    query = request.query
    try:
        limit = int(query.get("limit", "10000"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 10000:
        return bad_request("Invalid value for 'limit': it must be between 1 and 10000.", headers, "limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        return bad_request(f"Invalid value for 'order': {order!r}; supported: 'asc', 'desc'.", headers, "order")
    purpose = query.get("purpose")
    files = [stored for stored in request.app[FILES].files.values() if purpose in (None, stored.purpose)]
    if order == "desc":
        files.reverse()  # the store keeps upload order
    after = query.get("after")
    if after:
        ids = [stored.id for stored in files]
        files = files[ids.index(after) + 1:] if after in ids else []
    page = files[:limit]
    body = {"object": "list", "data": [stored.as_dict() for stored in page],
            "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None,
            "has_more": len(files) > limit}
    return respond(200, orjson.dumps(body), headers)


def add_routes(app: web.Application, prefix: str, shape: OpenAIShape | None = None) -> None:
    """The files routes under ``prefix``, answering in ``shape``'s dialect (OpenAI's if None)."""
    values = {SHAPE_KEY: shape} if shape is not None else {}
    app.router.add_post(f"{prefix}/files", bind(upload, values))
    app.router.add_get(f"{prefix}/files", bind(listing, values))
    app.router.add_get(f"{prefix}/files/{{file_id}}", bind(retrieve, values))
    app.router.add_get(f"{prefix}/files/{{file_id}}/content", bind(content, values))
    app.router.add_delete(f"{prefix}/files/{{file_id}}", bind(delete, values))
