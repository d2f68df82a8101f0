"""Reading a ``POST /v1/files`` request: the multipart form, its fields, and whether the file
looks like JSONL, before anything is stored.

The form is parsed by python-multipart through Starlette: the file part is spooled to a
temporary file (in memory up to 1 MiB, then on disk), so a 200 MB upload never sits whole in
memory, and an upload that is dropped or malformed stops here with nothing stored. The
body-size limit applies while it is read (``body_limit.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from dispatcher.api.errors import ApiError, BodyTooLarge

# What the SDK's files.create sends; anything else is refused so nothing is silently dropped.
FORM_FIELDS = {"file", "purpose", "expires_after[anchor]", "expires_after[seconds]"}
# Purposes the SDK knows; only batch input files are of use here.
KNOWN_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
SERVED_PURPOSES = ("batch",)
# Batch input files expire after 30 days unless asked otherwise (as OpenAI does);
# expires_after[seconds] may be 1 hour to 30 days.
DEFAULT_EXPIRY_S = 30 * 86400
MIN_EXPIRY_S, MAX_EXPIRY_S = 3600, 30 * 86400
MAX_FILENAME = 512
HEAD_BYTES = 64 * 1024
# Compressed input is read by submit (dispatcher/intake/reader.py): gzip, bzip2, xz.
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


@dataclass
class Upload:
    file: IO[bytes]
    filename: str
    purpose: str
    expires_after_s: float


async def read_form(request: Request) -> FormData:
    """The multipart form, or the error that explains why it cannot be read."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(400, "send the file as multipart/form-data with fields 'file' and 'purpose'",
                       code="invalid_content_type")
    try:
        return await request.form(max_files=1, max_fields=len(FORM_FIELDS))
    except BodyTooLarge:
        raise
    except ClientDisconnect:
        raise ApiError(400, "the upload was interrupted; nothing was stored", code="upload_interrupted") from None
    except HTTPException as exc:  # Starlette's answer to a malformed multipart body
        raise ApiError(400, f"malformed multipart body: {exc.detail}", code="invalid_multipart") from None
    except Exception as exc:  # noqa: BLE001 - the parser's other complaints about the body
        raise ApiError(400, f"malformed multipart body: {exc}", code="invalid_multipart") from None


def upload_from_form(form: FormData) -> Upload:
    """The checked fields of the form (400 naming the field otherwise)."""
    unknown = sorted(set(form.keys()) - FORM_FIELDS)
    if unknown:
        raise ApiError(400, f"unknown form field(s): {', '.join(unknown)}", param=unknown[0],
                       code="unknown_parameter")
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise ApiError(400, "the form has no file: send it in the field 'file'", param="file",
                       code="missing_file")
    purpose = form.get("purpose")
    if not isinstance(purpose, str) or not purpose:
        raise ApiError(400, "purpose is required; use purpose=batch", param="purpose", code="missing_purpose")
    if purpose not in SERVED_PURPOSES:
        known = "a purpose this server does not serve" if purpose in KNOWN_PURPOSES else "not a purpose"
        raise ApiError(400, f"purpose '{purpose[:64]}' is {known}; only 'batch' files (batch input) are "
                       "stored here", param="purpose", code="invalid_purpose")
    filename = (file.filename or "upload.jsonl")[:MAX_FILENAME]
    return Upload(file.file, filename, purpose, _expiry(form))


def _expiry(form: FormData) -> float:
    anchor = form.get("expires_after[anchor]")
    seconds = form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return DEFAULT_EXPIRY_S
    if anchor != "created_at":
        raise ApiError(400, "expires_after[anchor] must be 'created_at'", param="expires_after.anchor",
                       code="invalid_expires_after")
    try:
        value = int(str(seconds))
    except ValueError:
        value = -1
    if not MIN_EXPIRY_S <= value <= MAX_EXPIRY_S:
        raise ApiError(400, f"expires_after[seconds] must be a whole number from {MIN_EXPIRY_S} (1 hour) "
                       f"to {MAX_EXPIRY_S} (30 days)", param="expires_after.seconds",
                       code="invalid_expires_after")
    return float(value)


def check_jsonl(file: IO[bytes]) -> None:
    """422 unless the file looks like JSONL: its first line a JSON object (or the file
    compressed, which submit reads). Lines are checked one by one when a batch is created;
    this only turns away what is plainly something else (an archive, a CSV, a JSON array)."""
    head = file.read(HEAD_BYTES)
    file.seek(0)
    if not head.strip():
        raise ApiError(422, "the file is empty; a batch file holds one JSON request per line",
                       param="file", code="empty_file")
    if head.startswith(COMPRESSED_MAGIC):
        return
    first = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not first.startswith(b"{"):
        raise ApiError(
            422, "the file is not JSONL: its first line is not a JSON object. A batch file holds one "
            'JSON request per line, e.g. {"custom_id": "1", "method": "POST", "url": '
            '"/v1/chat/completions", "body": {...}}', param="file", code="invalid_file_format",
        )
