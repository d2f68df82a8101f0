"""A batch whose input file was refused: stored ``failed`` with ``errors.data`` naming each bad
line, as OpenAI answers a batch file with bad lines (a Batch object, not an HTTP error).

``Client.submit`` refuses such an input whole (``InputError`` with its problems) and stores
nothing; this records the failed batch, with no jobs, so the SDK's create-then-poll loop
sees it fail like any other batch.
"""

from __future__ import annotations

import json
import time
from typing import Any

from dispatcher.client.submit import new_batch_id
from dispatcher.errors import InputError
from dispatcher.store import batches as batch_sql
from dispatcher.store.database import Database
from dispatcher.store.tables import BatchStatus


def refusal_errors(error: InputError) -> dict[str, Any]:
    """OpenAI's ``errors`` list: one entry per bad line, or the whole-file reason."""
    data = [problem.as_dict() for problem in error.problems]
    if not data:  # the file as a whole: empty, damaged compression, an archive...
        data = [{"code": "invalid_file", "message": str(error), "param": None, "line": None}]
    return {"object": "list", "data": data}


def record_refused_batch(
    database: Database,
    error: InputError,
    *,
    owner: str | None,
    input_file_id: str,
    input_name: str,
    completion_window: str,
    priority: int,
    model: str | None,
    metadata: dict[str, str] | None,
) -> str:
    """Store the failed batch; returns its id."""
    now = time.time()
    batch_id = new_batch_id()
    with database.write() as connection:
        batch_sql.insert_batch(connection, dict(
            id=batch_id,
            status=BatchStatus.FAILED,
            model=model,
            priority=priority,
            metadata_json=json.dumps(metadata) if metadata else None,
            input_file=input_name,
            input_file_id=input_file_id,
            owner=owner,
            completion_window=completion_window,
            created_at=now,
            failed_at=now,
            errors_json=json.dumps(refusal_errors(error)),
            error_message=str(error).splitlines()[0][:1000],
        ))
    return batch_id
