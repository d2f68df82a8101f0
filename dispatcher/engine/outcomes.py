"""What running a job produced, in the shape the store writes.

An ``Outcome`` is either final (succeeded or failed) or a requeue (retry later, or move to a
fallback group), plus the attempt row for the provider call that led to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispatcher.providers.base import Completion, Usage
from dispatcher.providers.errors import ProviderError
from dispatcher.store.calls import FOLDED_OUTCOMES
from dispatcher.store.jobs import ClaimedJob
from dispatcher.store.tables import JobStatus


@dataclass(slots=True)
class AttemptRecord:
    number: int
    model_group: str
    deployment_id: str | None
    worker_id: str
    started_at: float
    ended_at: float
    latency_ms: float | None
    outcome: str  # success, error
    error_class: str | None = None
    status_code: int | None = None
    error_message: str | None = None
    usage: Usage | None = None
    cost: float | None = None
    request_id: str | None = None

    def row(self, job: ClaimedJob) -> dict[str, Any]:
        usage = self.usage
        return {
            "job_id": job.id,
            "batch_id": job.batch_id,
            "number": self.number,
            "claim": job.claim,
            "model_group": self.model_group,
            "deployment_id": self.deployment_id,
            "worker_id": self.worker_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "latency_ms": self.latency_ms,
            "outcome": self.outcome,
            "error_class": self.error_class,
            "status_code": self.status_code,
            "error_message": self.error_message,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "total_tokens": usage.total_tokens if usage else None,
            "cached_tokens": usage.cached_tokens if usage else None,
            "cost": self.cost,
            "request_id": self.request_id,
        }


@dataclass(slots=True)
class Outcome:
    """The result of one run of a claimed job."""

    job: ClaimedJob
    status: str  # JobStatus.SUCCEEDED / FAILED for final outcomes, QUEUED for a requeue
    finished_at: float
    attempt: AttemptRecord | None = None
    response_status: int | None = None
    response: str | None = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    deployment_id: str | None = None
    usage: Usage | None = None
    cost: float | None = None
    latency_ms: float | None = None
    # requeue only
    not_before: float = 0.0
    next_group: str | None = None
    retries: int = 0
    groups_tried: str | None = None
    # what the provider said, for settling rate limits (not stored as such)
    completion: Completion | None = None
    provider_error: ProviderError | None = None

    @property
    def is_final(self) -> bool:
        return self.status != JobStatus.QUEUED

    @property
    def holds_call(self) -> bool:
        """A success whose call the job row records (``jobs.call_outcome``, store/calls.py):
        no attempts row is written for it."""
        return self.is_final and self.attempt is not None and self.attempt.outcome in FOLDED_OUTCOMES

    @property
    def attempts_made(self) -> int:
        return self.job.attempts + (1 if self.attempt else 0)

    def finish_row(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "b_id": self.job.id,
            "b_status": self.status,
            "b_finished_at": self.finished_at,
            "b_attempts": self.attempts_made,
            "b_groups_tried": self.groups_tried,
            "b_response_status": self.response_status,
            "b_response": self.response,
            "b_request_id": self.request_id,
            "b_error_code": self.error_code,
            "b_error_message": self.error_message,
            "b_deployment_id": self.deployment_id,
            "b_prompt_tokens": usage.prompt_tokens if usage else None,
            "b_completion_tokens": usage.completion_tokens if usage else None,
            "b_total_tokens": usage.total_tokens if usage else None,
            "b_cached_tokens": usage.cached_tokens if usage else None,
            "b_cost": self.cost,
            "b_latency_ms": self.latency_ms,
            "b_call_outcome": self.attempt.outcome if self.holds_call else None,
            "b_worker_id": self.attempt.worker_id if self.holds_call else None,
        }

    def requeue_row(self) -> dict[str, Any]:
        return {
            "b_id": self.job.id,
            "b_not_before": self.not_before,
            "b_attempts": self.attempts_made,
            "b_retries": self.retries,
            "b_model_group": self.next_group or self.job.model_group,
            "b_groups_tried": self.groups_tried,
            "b_error_code": self.error_code,
            "b_error_message": self.error_message,
        }
