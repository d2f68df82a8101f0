"""A batch as clients see it, and its OpenAI Batch-object form for ``status --json``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Row

from dispatcher.store.tables import BatchStatus


@dataclass(frozen=True)
class BatchInfo:
    id: str
    status: str
    name: str | None
    priority: int
    model: str | None
    created_at: float
    in_progress_at: float | None
    finalizing_at: float | None
    completed_at: float | None
    failed_at: float | None
    expires_at: float | None
    expired_at: float | None
    cancelling_at: float | None
    cancelled_at: float | None
    completion_window: str
    input_file: str | None
    total: int
    succeeded: int
    failed: int
    cancelled: int
    expired: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    cost: float
    cost_unknown: int
    metadata: dict[str, Any] | None
    errors: dict[str, Any] | None
    error_message: str | None
    max_cost: float | None = None
    not_before: float | None = None  # --not-before / --delay: no job starts earlier
    owner: str | None = None  # the API key id that submitted it; None: direct access or the admin
    input_file_id: str | None = None  # the uploaded file it was made from

    @classmethod
    def from_row(cls, row: Row) -> "BatchInfo":
        return cls(
            id=row.id,
            status=row.status,
            name=row.name,
            priority=row.priority,
            model=row.model,
            created_at=row.created_at,
            in_progress_at=row.in_progress_at,
            finalizing_at=row.finalizing_at,
            completed_at=row.completed_at,
            failed_at=row.failed_at,
            expires_at=row.expires_at,
            expired_at=row.expired_at,
            cancelling_at=row.cancelling_at,
            cancelled_at=row.cancelled_at,
            completion_window=row.completion_window,
            input_file=row.input_file,
            total=row.total,
            succeeded=row.succeeded,
            failed=row.failed,
            cancelled=row.cancelled,
            expired=row.expired,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            total_tokens=row.total_tokens,
            cached_tokens=row.cached_tokens,
            cost=row.cost,
            cost_unknown=row.cost_unknown,
            metadata=json.loads(row.metadata_json) if row.metadata_json else None,
            errors=json.loads(row.errors_json) if row.errors_json else None,
            error_message=row.error_message,
            max_cost=row.max_cost,
            not_before=row.not_before,
            owner=row.owner,
            input_file_id=row.input_file_id,
        )

    @property
    def done(self) -> bool:
        """True once the batch is in a final state (completed, failed, expired, cancelled)."""
        return self.status in BatchStatus.FINAL

    def held_until(self, now: float | None = None) -> float | None:
        """When a held batch (--not-before, --delay) may start; None when it is not held now."""
        if self.done or self.not_before is None:
            return None
        return self.not_before if self.not_before > (time.time() if now is None else now) else None

    @property
    def estimated_final_cost(self) -> float | None:
        """Cost so far scaled to every request that will run (None before the first result,
        and None when some calls have no known price: the total is then unknown too)."""
        ran = self.succeeded + self.failed
        if ran == 0 or self.cost_unknown:
            return None
        if self.done:
            return self.cost
        remaining = self.total - self.finished_requests
        return self.cost + self.cost / ran * remaining

    @property
    def finished_requests(self) -> int:
        return self.succeeded + self.failed + self.cancelled + self.expired

    @property
    def unsuccessful(self) -> int:
        return self.failed + self.cancelled + self.expired

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's Batch object, plus our own fields beside (never instead of) its own."""
        def ts(value: float | None) -> int | None:
            return int(value) if value is not None else None

        return {
            "id": self.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": self.errors,
            "input_file_id": self.input_file_id or self.input_file,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": None,
            "error_file_id": None,
            "created_at": ts(self.created_at),
            "in_progress_at": ts(self.in_progress_at),
            "expires_at": ts(self.expires_at),
            "finalizing_at": ts(self.finalizing_at),
            "completed_at": ts(self.completed_at),
            "failed_at": ts(self.failed_at),
            "expired_at": ts(self.expired_at),
            "cancelling_at": ts(self.cancelling_at),
            "cancelled_at": ts(self.cancelled_at),
            "request_counts": {
                "total": self.total,
                "completed": self.succeeded,
                "failed": self.failed + self.expired,
            },
            "metadata": self.metadata,
            "name": self.name,
            "priority": self.priority,
            "cancelled_requests": self.cancelled,
            "expired_requests": self.expired,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens,
                "cached_tokens": self.cached_tokens,
            },
            # Unknown, not zero, when some calls have no known price; the priced part is beside.
            "cost_usd": None if self.cost_unknown else round(self.cost, 10),
            "cost_known_usd": round(self.cost, 10),
            "cost_unknown_requests": self.cost_unknown,
            "estimated_final_cost_usd": (
                None if self.estimated_final_cost is None else round(self.estimated_final_cost, 10)
            ),
            "max_cost_usd": self.max_cost,
            # Ours: set while the batch waits for --not-before/--delay (OpenAI has no holds).
            "held_until": ts(self.held_until()),
            "error_message": self.error_message,
        }
