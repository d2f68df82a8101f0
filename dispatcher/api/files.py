"""``/v1/files``: upload, list, retrieve, download and delete files, as the openai SDK calls them.

Uploaded files live in SQL in 1 MiB parts (``dispatcher/store/files.py``), so any API replica
serves any file and a download streams part by part. A batch's output and error files answer
here too (``result_files.py``), made from its results when read.
"""

from __future__ import annotations

from typing import Any, Iterator, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from dispatcher.api.auth import Caller, authenticated
from dispatcher.api.errors import ApiError
from dispatcher.api.pagination import cursor_page
from dispatcher.api.result_files import (
    ResultFile,
    exists,
    parse_result_file_id,
    result_file_object,
    result_file_size,
    stream_result_file,
)
from dispatcher.api.uploads import check_jsonl, read_form, upload_from_form
from dispatcher.client.batch_info import BatchInfo
from dispatcher.client.files import FileInfo
from dispatcher.errors import NotFoundError

router = APIRouter(prefix="/v1/files", tags=["files"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": ["batch"]},
                        "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
                        "expires_after[seconds]": {"type": "integer", "minimum": 3600, "maximum": 2592000},
                    },
                }
            }
        },
    }
}


# A download is the file's bytes, not JSON.
CONTENT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The file's bytes", "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}},
}


def _not_found(file_id: str) -> ApiError:
    return ApiError(404, f"no file with id '{file_id[:80]}'", param="file_id", code="file_not_found")


@router.post("", openapi_extra=UPLOAD_BODY)
async def upload_file(request: Request, caller: Caller = Depends(authenticated)) -> dict[str, Any]:
    """Store a batch input file (multipart: file, purpose=batch, optional expires_after)."""
    client = request.app.state.client
    form = await read_form(request)
    try:
        upload = upload_from_form(form)

        def store():
            check_jsonl(upload.file)
            return client.upload_file(
                upload.file, filename=upload.filename, purpose=upload.purpose,
                owner=caller.owner, expires_after_s=upload.expires_after_s,
            )

        info = await run_in_threadpool(store)
    finally:
        await form.close()
    return info.to_openai()


@router.get("")
async def list_files(
    request: Request,
    after: str | None = Query(None, max_length=200),
    limit: int = Query(10_000, ge=1, le=10_000),
    order: Literal["asc", "desc"] = "desc",
    purpose: str | None = Query(None, max_length=32),
    caller: Caller = Depends(authenticated),
) -> dict[str, Any]:
    """The caller's uploaded files (the admin's: everyone's), newest first by default."""
    client = request.app.state.client
    try:
        found = await run_in_threadpool(
            lambda: client.files(owner=caller.list_owner, purpose=purpose, after=after, limit=limit + 1,
                                 order=order)
        )
    except NotFoundError:
        raise ApiError(400, f"after: no file with id '{after[:80]}'", param="after", code="invalid_cursor") from None
    return cursor_page([info.to_openai() for info in found], limit)


async def _result_file(request: Request, caller: Caller, result: ResultFile) -> BatchInfo:
    """The batch behind a result file id, if the caller may see that file."""
    client = request.app.state.client
    try:
        info = await run_in_threadpool(lambda: client.status(result.batch_id, owner=caller.list_owner))
    except NotFoundError:
        raise _not_found(result.id) from None
    if not exists(result, info):
        raise _not_found(result.id)
    return info


async def _uploaded_file(request: Request, caller: Caller, file_id: str) -> FileInfo:
    client = request.app.state.client
    try:
        return await run_in_threadpool(lambda: client.file(file_id, owner=caller.list_owner))
    except NotFoundError:
        raise _not_found(file_id) from None


@router.get("/{file_id}")
async def retrieve_file(file_id: str, request: Request, caller: Caller = Depends(authenticated)) -> dict[str, Any]:
    result = parse_result_file_id(file_id)
    if result is not None:
        info = await _result_file(request, caller, result)
        database = request.app.state.client.database
        size = await run_in_threadpool(result_file_size, database, result)
        return result_file_object(result, info, size)
    return (await _uploaded_file(request, caller, file_id)).to_openai()


@router.get("/{file_id}/content", response_class=StreamingResponse, responses=CONTENT_RESPONSE)
async def file_content(file_id: str, request: Request, caller: Caller = Depends(authenticated)) -> StreamingResponse:
    """The file's bytes, streamed (a part or a page of results at a time)."""
    client = request.app.state.client
    result = parse_result_file_id(file_id)
    if result is not None:
        info = await _result_file(request, caller, result)
        if info.pruned_at is not None:
            raise ApiError(410, f"the results of batch {info.id} were pruned (retention): its request and "
                           "response bodies are no longer stored", param="file_id", code="results_pruned")
        chunks = stream_result_file(client.database, result, downloading=info.done)
        filename = result.filename
    else:
        def open_file() -> tuple[FileInfo, Iterator[bytes]]:
            info = client.file(file_id, owner=caller.list_owner)
            return info, client.file_bytes(info.id, owner=caller.list_owner)

        try:
            info, chunks = await run_in_threadpool(open_file)
        except NotFoundError:
            raise _not_found(file_id) from None
        filename = info.filename
    return StreamingResponse(
        chunks, media_type="application/octet-stream",
        headers={"content-disposition": _attachment(filename)},
    )


@router.delete("/{file_id}")
async def delete_file(file_id: str, request: Request, caller: Caller = Depends(authenticated)) -> dict[str, Any]:
    result = parse_result_file_id(file_id)
    if result is not None:
        await _result_file(request, caller, result)
        raise ApiError(
            400, "a batch's output and error files are made from its results when read; no copy is "
            "stored, so there is nothing to delete", param="file_id", code="result_file_not_deletable",
        )
    client = request.app.state.client
    try:
        info = await run_in_threadpool(lambda: client.delete_file(file_id, owner=caller.list_owner))
    except NotFoundError:
        raise _not_found(file_id) from None
    return {"id": info.id, "object": "file", "deleted": True}


def _attachment(filename: str) -> str:
    """A Content-Disposition naming the file; the name is only metadata, quoted safely."""
    safe = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f'attachment; filename="{safe}"'
