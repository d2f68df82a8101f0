"""A provider batch's input: its jobs' requests in the provider's line format, in a temp file.

Built from SQL page by page (never all bodies in memory) each time a step needs it, so a
worker that takes a provider batch over builds the same lines again. A line's ``custom_id``
is ``j<job id>``: the provider's results map straight back to job rows, whatever the
user's own custom_id (Anthropic allows only 64 characters of ``[a-zA-Z0-9_-]``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dispatcher.deployments import Deployment
from dispatcher.engine.execution import request_body
from dispatcher.providers.batch_api.base import BatchApi, UnsupportedBatchRequest
from dispatcher.store.database import Database
from dispatcher.intake.validate import CHAT_COMPLETIONS
from dispatcher.store.provider_batches import part_jobs

PAGE = 5000


def line_id(job_id: int) -> str:
    return f"j{job_id}"


def job_id_of(custom_id: str) -> int | None:
    if custom_id.startswith("j") and custom_id[1:].isdigit():
        return int(custom_id[1:])
    return None


@dataclass
class InputFile:
    path: Path
    lines: int = 0
    bytes: int = 0
    refused: dict[int, str] = field(default_factory=dict)  # job id -> why it cannot be sent

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def build_input(database: Database, part_id: str, api: BatchApi, deployment: Deployment) -> InputFile:
    """Write the part's lines (blocking: run it on a database thread)."""
    handle, name = tempfile.mkstemp(prefix=f"llmd-{part_id}-", suffix=".jsonl")
    built = InputFile(Path(name))
    try:
        with os.fdopen(handle, "wb", buffering=1 << 20) as out:
            after = 0
            while True:
                with database.read() as connection:
                    rows = part_jobs(connection, part_id, after, PAGE)
                if not rows:
                    break
                for row in rows:
                    try:
                        line = api.encode_line(line_id(row.id), request_body(row.body, deployment),
                                               row.endpoint or CHAT_COMPLETIONS)
                    except UnsupportedBatchRequest as exc:
                        built.refused[row.id] = str(exc)
                        continue
                    out.write(line)
                    out.write(b"\n")
                    built.lines += 1
                    built.bytes += len(line) + 1
                after = rows[-1].id
    except BaseException:
        built.remove()
        raise
    return built
