"""What a provider's batch API client implements (OpenAI/Azure Files + Batches, Anthropic
Message Batches), and what it reports.

The worker fleet drives these steps (``dispatcher/remote/``); each step's remote id is stored
in SQL before the next step uses it. ``name`` is our part id: it tags what we create
(file name, batch metadata) so a worker that restarts after a SIGKILL can find an upload or a
batch whose id it never stored (``find_upload``, ``find_created``) instead of making another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Collection, Protocol

from dispatcher.providers.base import Usage
from dispatcher.providers.errors import ProviderError


class RemoteStatus:
    """A provider batch's state, in our words."""

    RUNNING = "running"  # validating, in progress, finalizing, cancelling
    ENDED = "ended"  # completed, expired or cancelled: results can be read
    FAILED = "failed"  # the provider refused the whole batch (validation); no results


@dataclass(slots=True)
class RemoteBatch:
    id: str
    status: str  # RemoteStatus
    provider_status: str  # the provider's own word (completed, expired, ended, canceling...)
    output_ref: str | None = None  # output file id / results URL, once ended
    error_ref: str | None = None  # error file id (OpenAI), once ended
    message: str | None = None  # why a FAILED batch failed (free of secrets)
    created_at: float | None = None


class LineKind:
    SUCCEEDED = "succeeded"
    ERRORED = "errored"  # the provider answered the line with an error (``error`` says which)
    EXPIRED = "expired"  # the batch ended before the line ran
    CANCELED = "canceled"  # the batch was cancelled before the line ran


@dataclass(slots=True)
class LineResult:
    """One line of a provider batch's results, mapped back by ``custom_id``."""

    custom_id: str
    kind: str  # LineKind
    status_code: int | None = None
    body: bytes | None = None  # SUCCEEDED: the response as a realtime call stores it (OpenAI shape)
    usage: Usage | None = None
    error: ProviderError | None = None  # ERRORED: classified as a realtime error would be
    request_id: str | None = None


class UnsupportedBatchRequest(ValueError):
    """A job body that cannot be put in this provider's batch (the realtime adapter would
    refuse it too); the message says why."""


class BatchApi(Protocol):
    """One deployment's batch API. Methods raise ``ProviderError`` subclasses only."""

    max_lines: int  # the provider's limits, capped by the deployment's batch_max_lines/bytes
    max_bytes: int
    uploads: bool  # whether ``upload`` is a step (OpenAI, Azure) or the lines go in ``create``

    def encode_line(self, custom_id: str, body: bytes, endpoint: str) -> bytes:
        """One request in the provider's input format, without a newline. ``body`` is the
        request as the realtime adapter receives it (model set, body defaults applied);
        ``endpoint`` is ``/v1/chat/completions`` or ``/v1/embeddings``. Raises
        UnsupportedBatchRequest."""

    async def upload(self, name: str, path: Path) -> str | None:
        """Upload the file of encoded lines (newline-separated) at ``path``; returns its file
        id, or None for a provider without an upload step (Anthropic)."""

    async def find_upload(self, name: str, since: float) -> str | None:
        """The id of a file we uploaded as ``name`` at or after ``since`` (Unix s, less 10
        minutes of clock slack), if any; always None without an upload step."""

    async def create(self, name: str, input_ref: str | None, path: Path | None, endpoint: str) -> RemoteBatch:
        """Create the batch from the uploaded file ``input_ref`` (OpenAI; ``path`` unused, may
        be None) or from the lines at ``path``, streamed (Anthropic), tagged with ``name``
        where the provider keeps a tag."""

    async def find_created(
        self, name: str, input_ref: str | None, lines: int, since: float, known: Collection[str],
    ) -> str | None:
        """The id of a batch created for ``name`` (tagged with it or made from the same input
        file; for Anthropic, which keeps no tag, the one batch of ``lines`` requests created at
        or after ``since``, less 10 minutes of clock slack), if any. ``known``: remote batch ids
        we already own, never returned."""

    async def retrieve(self, remote_id: str) -> RemoteBatch:
        """The batch as it stands; ``output_ref``/``error_ref`` are set once it has ENDED."""

    async def cancel(self, remote_id: str) -> RemoteBatch:
        """Ask the provider to stop the batch (it goes on RUNNING while cancelling, then
        ENDED with the lines done so far); one that has already ended is returned as it is."""

    def results(self, remote: RemoteBatch) -> AsyncIterator[LineResult]:
        """Every line of an ENDED batch's output (and error file), streamed; never the whole
        file in memory."""

    async def delete_file(self, file_id: str) -> None:
        """Remove an uploaded file (an orphan, or an input no longer needed); missing is fine.
        Nothing to do without an upload step."""

    async def aclose(self) -> None:
        """Close the client's connections."""
