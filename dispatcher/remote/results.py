"""A provider batch's result lines written to their jobs: the same result and attempt rows,
usage and batch counters as realtime calls, at the provider's batch price.

A line the provider failed (errored with a retryable error, expired, never answered) goes
back to the realtime queue while the job's completion window is open; otherwise the job ends
failed with the provider's error. After a cancel, lines that did not run end cancelled.
Each chunk is one transaction that only touches jobs still in the provider batch, so reading
the same results again (a worker killed mid-import) writes nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from dispatcher.pricing import Price
from dispatcher.providers.batch_api.base import LineKind, LineResult
from dispatcher.remote.input_file import job_id_of
from dispatcher.store import batches as batch_sql
from dispatcher.store import provider_batches as part_sql
from dispatcher.store.tables import JobStatus, Route


@dataclass(frozen=True)
class PartContext:
    """What writing a provider batch's results needs to know about it."""

    part_id: str
    batch_id: str
    model_group: str
    deployment_id: str
    worker_id: str
    submitted_at: float
    cancel_requested: bool
    price: Price | None


@dataclass
class Tally:
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    requeued: int = 0
    requeued_groups: set[str] = field(default_factory=set)

    def add(self, other: "Tally") -> None:
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.cancelled += other.cancelled
        self.requeued += other.requeued
        self.requeued_groups |= other.requeued_groups


def write_results(connection: Connection, context: PartContext, lines: list[LineResult], now: float,
                  *, postgres: bool) -> Tally:
    """Apply one chunk of result lines in the caller's transaction."""
    answered: dict[int, LineResult] = {}
    others: dict[int, LineResult] = {}
    for line in lines:
        job_id = job_id_of(line.custom_id)
        if job_id is not None:
            (answered if line.kind == LineKind.SUCCEEDED else others)[job_id] = line
    writer = _Writer(context, now)
    # Answers are written without reading the jobs first (the write itself is guarded); the
    # rest decide on the job's window, so they are read (and locked) first.
    for job_id, line in answered.items():
        writer.answered(job_id, line)
    waiting = part_sql.jobs_in_part(connection, context.part_id, list(others), postgres)
    for job_id, job in waiting.items():
        writer.line(job, others[job_id])
    return writer.apply(connection)


def write_unanswered(connection: Connection, context: PartContext, job_ids: list[int], now: float,
                     reason: str, *, postgres: bool) -> Tally:
    """Jobs the provider batch gave no result for (it failed whole, or left lines out)."""
    waiting = part_sql.jobs_in_part(connection, context.part_id, job_ids, postgres)
    writer = _Writer(context, now)
    for job in waiting.values():
        writer.not_run(job, "provider_batch_no_result", reason)
    return writer.apply(connection)


def write_refused(connection: Connection, context: PartContext, refused: dict[int, str], now: float,
                  *, postgres: bool) -> Tally:
    """Jobs whose request cannot be put in this provider's batch: failed, as the realtime
    adapter would fail them, without a call."""
    waiting = part_sql.jobs_in_part(connection, context.part_id, list(refused), postgres)
    writer = _Writer(context, now)
    for job in waiting.values():
        writer.refused(job, refused[job.id])
    return writer.apply(connection)


class _Writer:
    def __init__(self, context: PartContext, now: float):
        self.context = context
        self.now = now
        self.finished: list[dict[str, Any]] = []
        self.answers: list[tuple[dict[str, Any], LineResult]] = []
        self.requeued: list[dict[str, Any]] = []
        self.attempt_rows: list[dict[str, Any]] = []
        self.delta: dict[str, float] = defaultdict(float)
        self.tally = Tally()

    def line(self, job: part_sql.InPart, line: LineResult) -> None:
        """A line that did not succeed, of a job read with ``jobs_in_part``."""
        if line.kind == LineKind.ERRORED:
            self._errored(job, line)
        elif line.kind == LineKind.EXPIRED:
            self.not_run(job, "batch_expired", "the provider batch expired before this request ran")
        else:
            self.not_run(job, "batch_cancelled", "the provider batch was cancelled before this request ran")

    def answered(self, job_id: int, line: LineResult) -> None:
        """A successful line; its attempt row and counters follow once the write says its job
        was still waiting (``apply``)."""
        usage = line.usage
        cost = self.context.price.cost(usage) if (self.context.price is not None and usage is not None) else None
        self.answers.append(({
            "b_id": job_id, "b_status": JobStatus.SUCCEEDED, "b_finished_at": self.now,
            "b_response_status": line.status_code or 200,
            "b_response": line.body.decode() if line.body is not None else None,
            "b_request_id": line.request_id, "b_error_code": None, "b_error_message": None,
            "b_deployment_id": self.context.deployment_id,
            "b_prompt_tokens": usage.prompt_tokens if usage else None,
            "b_completion_tokens": usage.completion_tokens if usage else None,
            "b_total_tokens": usage.total_tokens if usage else None,
            "b_cached_tokens": usage.cached_tokens if usage else None,
            "b_cost": cost, "b_latency_ms": self._latency_ms(),
        }, line))

    def _count_answer(self, row: dict[str, Any], line: LineResult, claim: int, number: int) -> None:
        self.attempt_rows.append(self._attempt_row(row["b_id"], claim, number, "success", line, row["b_cost"]))
        self.tally.succeeded += 1
        usage, cost = line.usage, row["b_cost"]
        if usage is not None:
            self.delta["prompt_tokens"] += usage.prompt_tokens
            self.delta["completion_tokens"] += usage.completion_tokens
            self.delta["total_tokens"] += usage.total_tokens
            self.delta["cached_tokens"] += usage.cached_tokens or 0
            if cost is None:
                self.delta["cost_unknown"] += 1
            else:
                self.delta["cost"] += cost

    def _errored(self, job: part_sql.InPart, line: LineResult) -> None:
        error = line.error
        code = error.code if error is not None else "provider_error"
        message = error.message if error is not None else "the provider batch failed this request"
        self._attempt(job, "error", line, cost=None)
        if error is not None and error.retryable and self._may_retry(job):
            self._requeue(job, code, message, attempted=1)
        else:
            self._final(job, JobStatus.FAILED, code, message, attempted=1, status_code=line.status_code)

    def not_run(self, job: part_sql.InPart, code: str, message: str) -> None:
        """A line the provider did not run: realtime while the window allows."""
        if self.context.cancel_requested:
            self._final(job, JobStatus.CANCELLED, "batch_cancelled",
                        "The batch was cancelled before this request ran.", attempted=0)
        elif self._may_retry(job):
            self._requeue(job, code, message, attempted=0)
        else:
            self._final(job, JobStatus.FAILED, code, f"{message}, and its completion window has passed",
                        attempted=0)

    def refused(self, job: part_sql.InPart, message: str) -> None:
        self._final(job, JobStatus.FAILED, "invalid_request", message, attempted=0)

    def _may_retry(self, job: part_sql.InPart) -> bool:
        return not self.context.cancel_requested and (job.expires_at is None or self.now < job.expires_at)

    def _requeue(self, job: part_sql.InPart, code: str, message: str, *, attempted: int) -> None:
        self.requeued.append({"b_id": job.id, "b_not_before": 0.0, "b_attempted": attempted,
                              "b_error_code": code, "b_error_message": message})
        self.tally.requeued += 1
        self.tally.requeued_groups.add(self.context.model_group)

    def _final(self, job: part_sql.InPart, status: str, code: str, message: str, *, attempted: int,
               status_code: int | None = None) -> None:
        self.finished.append({
            "b_id": job.id, "b_status": status, "b_finished_at": self.now,
            "b_response_status": status_code, "b_response": None, "b_request_id": None,
            "b_error_code": code, "b_error_message": message,
            "b_deployment_id": self.context.deployment_id if attempted else None,
            "b_prompt_tokens": None, "b_completion_tokens": None, "b_total_tokens": None,
            "b_cached_tokens": None, "b_cost": None,
            "b_latency_ms": self._latency_ms() if attempted else None,
        })
        if status == JobStatus.CANCELLED:
            self.tally.cancelled += 1
        else:
            self.tally.failed += 1

    def _attempt(self, job: part_sql.InPart, outcome: str, line: LineResult, *, cost: float | None) -> None:
        self.attempt_rows.append(self._attempt_row(job.id, job.claim, job.attempts + 1, outcome, line, cost))

    def _attempt_row(self, job_id: int, claim: int, number: int, outcome: str, line: LineResult,
                     cost: float | None) -> dict[str, Any]:
        usage, error = line.usage, line.error
        return {
            "job_id": job_id, "batch_id": self.context.batch_id, "number": number,
            "claim": claim, "model_group": self.context.model_group,
            "deployment_id": self.context.deployment_id, "worker_id": self.context.worker_id,
            "started_at": self.context.submitted_at, "ended_at": self.now,
            "latency_ms": self._latency_ms(), "outcome": outcome,
            "error_class": error.error_class if error is not None else None,
            "status_code": line.status_code,
            "error_message": error.message if error is not None else None,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "total_tokens": usage.total_tokens if usage else None,
            "cached_tokens": usage.cached_tokens if usage else None,
            "cost": cost, "request_id": line.request_id, "route": Route.PROVIDER_BATCH,
        }

    def _latency_ms(self) -> float:
        return max(0.0, (self.now - self.context.submitted_at) * 1000.0)

    def apply(self, connection: Connection) -> Tally:
        if self.answers:
            written = part_sql.finish_waiting_lines(connection, self.context.part_id, [row for row, _ in self.answers])
            for row, line in self.answers:
                if row["b_id"] in written:
                    claim, number = written[row["b_id"]]
                    self._count_answer(row, line, claim, number)
        part_sql.finish_lines(connection, self.finished)
        part_sql.requeue_lines(connection, self.requeued)
        part_sql.insert_line_attempts(connection, self.attempt_rows)
        if self.requeued:
            batch_sql.cancel_requeued_jobs_of_cancelled_batches(
                connection, [row["b_id"] for row in self.requeued], self.now
            )
        tally = self.tally
        self.delta["succeeded"] += tally.succeeded
        self.delta["failed"] += tally.failed
        self.delta["cancelled"] += tally.cancelled
        if any(self.delta.values()):
            batch_sql.add_counters(connection, {self.context.batch_id: dict(self.delta)})
        if tally.succeeded or tally.failed or tally.cancelled:
            batch_sql.finish_if_done(connection, [self.context.batch_id], self.now)
        return tally
