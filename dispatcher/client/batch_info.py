"""A batch as clients see it, and its OpenAI Batch-object form for ``status --json``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
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
    budget_exceeded_at: float | None = None  # when spending reached max_cost (unstarted jobs cancelled)
    endpoint: str = "/v1/chat/completions"  # the url of every line (or /v1/embeddings)
    via: str = "realtime"  # the route: realtime, or provider-batch (the providers' batch APIs)
    pruned_at: float | None = None  # when retention dropped its bodies: no results to write since
    # provider-batch: its batches at the providers (id, remote_id, deployment, state, lines...)
    provider_batches: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Row, provider_batches: list[dict[str, Any]] | None = None) -> "BatchInfo":
        return cls(
            provider_batches=provider_batches or [],
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
            budget_exceeded_at=row.budget_exceeded_at,
            endpoint=row.endpoint,
            via=row.via,
            pruned_at=row.pruned_at,
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

    @property
    def stopped_by_cost_cap(self) -> bool:
        """Its cost cap (max_cost) was reached with requests still to start: those were cancelled."""
        return self.budget_exceeded_at is not None and self.cancelled > 0

    @property
    def openai_status(self) -> str:
        """``status`` in OpenAI's words (OpenAI has no ``budget_exceeded``). A batch its cost cap
        stopped is ``cancelled`` (``cancelling`` while the calls already running finish); one
        that reached its cap with every request already run is ``completed``."""
        if self.stopped_by_cost_cap and self.status == BatchStatus.IN_PROGRESS:
            return BatchStatus.CANCELLING
        if self.status == BatchStatus.BUDGET_EXCEEDED:
            return BatchStatus.CANCELLED if self.stopped_by_cost_cap else BatchStatus.COMPLETED
        return self.status

    def _openai_times(self) -> dict[str, int | None]:
        """OpenAI's timestamps. A batch its cost cap stopped reads as a cancelled one: cancelling
        when the cap was reached, cancelled when its last call ended (never completed)."""
        times = {
            "created_at": self.created_at, "in_progress_at": self.in_progress_at,
            "expires_at": self.expires_at, "finalizing_at": self.finalizing_at,
            "completed_at": self.completed_at, "failed_at": self.failed_at,
            "expired_at": self.expired_at, "cancelling_at": self.cancelling_at,
            "cancelled_at": self.cancelled_at,
        }
        if self.stopped_by_cost_cap:
            times["cancelling_at"] = self.cancelling_at or self.budget_exceeded_at
            if self.status == BatchStatus.BUDGET_EXCEEDED:
                times.update(cancelled_at=self.completed_at, completed_at=None, finalizing_at=None)
        return {name: int(value) if value is not None else None for name, value in times.items()}

    def _openai_errors(self) -> dict[str, Any] | None:
        """``errors``: the input file's bad lines, and why its cost cap stopped a batch."""
        if not self.stopped_by_cost_cap:
            return self.errors
        whose = "" if self.owner is None else ", as asked or its API key's cost ceiling if lower"
        stopped = {
            "code": "budget_exceeded",
            "message": f"the batch reached its max_cost ({_usd(self.max_cost)} USD{whose}): "
                       f"{_usd(self.cost)} USD spent; {self.cancelled} requests that had not started "
                       "were cancelled",
            "line": None,
            "param": None,
        }
        earlier = (self.errors or {}).get("data") or []
        return {"object": "list", "data": [*earlier, stopped]}

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's Batch object, plus our own fields beside (never instead of) its own.

        ``status`` is one of OpenAI's; ours, which says more, is ``dispatcher_status``."""
        def ts(value: float | None) -> int | None:
            return int(value) if value is not None else None

        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": self._openai_errors(),
            "input_file_id": self.input_file_id or self.input_file,
            "completion_window": self.completion_window,
            "status": self.openai_status,
            "output_file_id": None,
            "error_file_id": None,
            **self._openai_times(),
            "request_counts": {
                "total": self.total,
                "completed": self.succeeded,
                "failed": self.failed + self.expired,
            },
            "metadata": self.metadata,
            "dispatcher_status": self.status,  # ours: budget_exceeded where OpenAI's says cancelled
            "name": self.name,
            "priority": self.priority,
            "via": self.via,  # ours: the route (realtime, or provider-batch: the provider's batch API)
            **({"provider_batches": self.provider_batches} if self.provider_batches else {}),
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


def provider_batch_view(part: Row) -> dict[str, Any]:
    """One of a batch's provider batches, as status shows it (no key, no file contents)."""
    return {
        "id": part.id, "remote_id": part.remote_id, "deployment": part.deployment_id,
        "model_group": part.model_group, "state": part.state, "provider_status": part.provider_status,
        "lines": part.lines, "input_file_id": part.input_file_id, "polls": part.polls,
        "created_at": int(part.created_at), "submitted_at": int(part.submitted_at) if part.submitted_at else None,
        "ended_at": int(part.ended_at) if part.ended_at else None,
        "cancel_requested": bool(part.cancel_requested), "last_problem": part.message,
    }


def _usd(amount: float | None) -> str:
    """An amount in USD to the nano-dollar, without trailing zeros: 0.05, 0.000024, 12.5."""
    return "unknown" if amount is None else f"{amount:.9f}".rstrip("0").rstrip(".")
