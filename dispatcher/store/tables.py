"""The database schema: batches, jobs, attempts, live workers, API keys and uploaded files.

SQL is the source of truth for every job's state; Redis holds only what can be rebuilt from
these tables. Timestamps are Unix seconds (floats), like OpenAI's batch objects.
Migrations in ``migrations/`` must produce exactly this schema (a test compares them).
"""

from __future__ import annotations

from typing import Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from dispatcher.store.bodies import PackedText


class JobStatus:
    QUEUED = "queued"  # waiting to be claimed (maybe not before ``not_before``)
    RUNNING = "running"  # claimed by a worker; ``claim`` fences its result
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    # the provider batch route (dispatcher/remote/): never claimed by realtime workers
    HELD = "held"  # waiting to be put in a provider batch
    REMOTE = "remote"  # in a provider batch (``remote_part``); its line's result fences it

    FINAL = (SUCCEEDED, FAILED, CANCELLED, EXPIRED)


class Route:
    """How a batch's requests reach the provider (``submit --via``)."""

    REALTIME = "realtime"
    PROVIDER_BATCH = "provider-batch"
    AUTO = "auto"  # chosen at submit: provider-batch for low/bulk priority and a 24 h window

    CHOICES = (REALTIME, PROVIDER_BATCH, AUTO)


class BatchStatus:
    """OpenAI's batch statuses."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    BUDGET_EXCEEDED = "budget_exceeded"  # ours: max_cost reached, unstarted jobs cancelled

    FINAL = (FAILED, COMPLETED, EXPIRED, CANCELLED, BUDGET_EXCEEDED)


class Batch(SQLModel, table=True):
    __tablename__ = "batches"

    id: str = Field(primary_key=True, max_length=64)
    name: Optional[str] = Field(default=None, max_length=200)
    status: str = Field(max_length=20, index=True)
    endpoint: str = Field(default="/v1/chat/completions", max_length=64)
    model: Optional[str] = Field(default=None, max_length=200)
    priority: int = 5
    weight: float = 1.0
    metadata_json: Optional[str] = Field(default=None, sa_type=sa.Text)
    input_file: Optional[str] = Field(default=None, sa_type=sa.Text)
    idempotency_key: Optional[str] = Field(default=None, max_length=200, unique=True)
    completion_window: str = Field(default="24h", max_length=20)
    not_before: Optional[float] = None
    max_cost: Optional[float] = None
    budget_exceeded_at: Optional[float] = Field(
        default=None, description="when max_cost stopped the batch from starting more jobs"
    )
    cache_mode: int = Field(default=0, description="0 off, 1 deterministic requests, 2 forced")
    storing_until: Optional[float] = Field(
        default=None,
        description="set while submit stores the jobs (database clock); stale: the submitter died",
    )
    created_at: float
    in_progress_at: Optional[float] = None
    finalizing_at: Optional[float] = None
    completed_at: Optional[float] = None
    failed_at: Optional[float] = None
    expires_at: Optional[float] = None
    expired_at: Optional[float] = None
    cancelling_at: Optional[float] = None
    cancelled_at: Optional[float] = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    expired: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    cost_unknown: int = Field(default=0, description="billed attempts whose price is unknown")
    errors_json: Optional[str] = Field(default=None, sa_type=sa.Text)
    error_message: Optional[str] = Field(default=None, sa_type=sa.Text)
    owner: Optional[str] = Field(
        default=None, max_length=40, index=True,
        description="the API key id that created the batch; NULL: direct access or the admin key",
    )
    input_file_id: Optional[str] = Field(default=None, max_length=40, description="an uploaded file's id")
    kind: str = Field(
        default="batch", max_length=16, sa_column_kwargs={"server_default": "batch"},
        description="batch, or completion: one request a caller waits for (POST /v1/chat/completions)",
    )
    via: str = Field(
        default="realtime", max_length=16, sa_column_kwargs={"server_default": "realtime"},
        description="the route chosen at submit: realtime, or provider-batch (the provider's batch API)",
    )
    results_downloaded_at: Optional[float] = Field(
        default=None, description="when its results were last exported whole (retention keeps it until then)"
    )
    pruned_at: Optional[float] = Field(
        default=None, description="when retention dropped its request and response bodies"
    )


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index(
            "ix_jobs_ready",
            "model_group",
            "priority",
            "fair_key",
            "id",
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        ),
        sa.Index("ux_jobs_batch_seq", "batch_id", "seq", unique=True),
        # No index on (batch_id, custom_id): nothing looks a job up by it, and intake refuses a
        # repeated custom_id (intake/validate.py); it cost ~120 bytes per job (bench/storage.py).
        sa.Index("ix_jobs_batch_status", "batch_id", "status"),
        # Partial: a job leaves it when its line's result is written, so the import (which
        # rewrites every job of a provider batch) adds no entry to it.
        sa.Index(
            "ix_jobs_remote_part",
            "remote_part",
            postgresql_where=sa.text("status = 'remote'"),
            sqlite_where=sa.text("status = 'remote'"),
        ),
        sa.Index(
            "ix_jobs_running_worker",
            "worker_id",
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        ),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    batch_id: str = Field(max_length=64)
    seq: int = Field(description="position in the batch, 0-based; results keep this order")
    line_no: Optional[int] = None
    custom_id: str = Field(max_length=512)
    model_group: str = Field(max_length=200)
    priority: int = 5
    fair_key: float = 0.0
    body: Optional[str] = Field(
        default=None, sa_type=PackedText,
        description="request body JSON without 'model' (bodies.py); NULL once pruned (retention.py)",
    )
    endpoint: Optional[str] = Field(
        default=None, max_length=32,
        description="the API path called, as its batch's endpoint; NULL: /v1/chat/completions",
    )
    est_prompt_tokens: int = 0
    est_completion_tokens: int = 0
    status: str = Field(max_length=20)
    claim: int = Field(default=0, description="bumped by every claim; fences result writes")
    worker_id: Optional[str] = Field(
        default=None, max_length=64,
        description="while running: its worker; once ended: the worker of the call it holds (call_outcome)",
    )
    not_before: float = 0.0
    expires_at: Optional[float] = Field(
        default=None, description="not started by then: the job ends expired (completion window)"
    )
    reserved_cost: Optional[float] = Field(
        default=None, description="estimated cost of the running call (batch cost caps)"
    )
    cache_mode: int = Field(default=0, description="0 off, 1 deterministic requests, 2 forced")
    remote_part: Optional[str] = Field(
        default=None, max_length=40, description="the provider batch (provider_batches.id) it was put in"
    )
    awaited: bool = Field(
        default=False, sa_column_kwargs={"server_default": sa.false()},
        description="a caller waits for it: its result is written at once and announced",
    )
    attempts: int = Field(default=0, description="provider calls made, abandoned ones included")
    worker_deaths: int = Field(
        default=0, description="workers that died while running this job (a poison job is capped)"
    )
    retries: int = Field(default=0, description="retries used in the current model group")
    groups_tried: Optional[str] = Field(default=None, sa_type=sa.Text)
    created_at: float
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    response_status: Optional[int] = None
    response: Optional[str] = Field(default=None, sa_type=PackedText, description="NULL once pruned")
    request_id: Optional[str] = Field(default=None, max_length=200)
    error_code: Optional[str] = Field(default=None, max_length=64)
    error_message: Optional[str] = Field(default=None, sa_type=sa.Text)
    deployment_id: Optional[str] = Field(default=None, max_length=200)
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    total_tokens: Optional[int] = None
    cached_tokens: Optional[int] = None
    cost: Optional[float] = None
    latency_ms: Optional[float] = None
    call_outcome: Optional[str] = Field(
        default=None, max_length=12,
        description=(
            "success or cache_hit: the call that gave this result is recorded here, not as an "
            "attempts row (store/calls.py); NULL: its calls are all in attempts"
        ),
    )


class Attempt(SQLModel, table=True):
    """One provider call (or a call abandoned when its worker died), except the successful
    call whose result a job holds: that one is read from the job row (store/calls.py)."""

    __tablename__ = "attempts"
    __table_args__ = (
        # One call per claim: a retried write of the same outcome cannot add a second row.
        sa.Index("ux_attempts_job_claim", "job_id", "claim", unique=True),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: int = Field(description="looked up through ux_attempts_job_claim, whose first column it is")
    batch_id: str = Field(max_length=64, index=True)
    number: int
    claim: Optional[int] = Field(default=None, description="the job's claim number the call ran under")
    model_group: str = Field(max_length=200)
    deployment_id: Optional[str] = Field(default=None, max_length=200)
    worker_id: Optional[str] = Field(default=None, max_length=64)
    started_at: float
    ended_at: float
    latency_ms: Optional[float] = None
    outcome: str = Field(max_length=20, description="success, error, abandoned, cache_hit")
    error_class: Optional[str] = Field(default=None, max_length=64)
    status_code: Optional[int] = None
    error_message: Optional[str] = Field(default=None, sa_type=sa.Text)
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    total_tokens: Optional[int] = None
    cached_tokens: Optional[int] = None
    cost: Optional[float] = None
    request_id: Optional[str] = Field(default=None, max_length=200)
    route: Optional[str] = Field(
        default=None, max_length=16, description="provider-batch for a line of a provider batch; NULL: realtime"
    )


class PartState:
    """A provider batch's steps; each remote id is stored before the next step uses it."""

    NEW = "new"  # jobs assigned; nothing sent
    UPLOADING = "uploading"  # an upload may be in flight (a taker looks for it before uploading)
    UPLOADED = "uploaded"  # input_file_id stored
    CREATING = "creating"  # a create may be in flight (a taker looks for it before creating)
    SUBMITTED = "submitted"  # remote_id stored: poll until it ends
    ENDED = "ended"  # the provider says it ended: import its results
    IMPORTED = "imported"  # every line mapped back to its job
    DROPPED = "dropped"  # cancelled before the provider had it

    DONE = (IMPORTED, DROPPED)


class ProviderBatch(SQLModel, table=True):
    """One batch at a provider (a part of one of our batches, within the provider's limits)."""

    __tablename__ = "provider_batches"

    id: str = Field(primary_key=True, max_length=40)
    batch_id: str = Field(max_length=64, index=True)
    part: int = Field(description="0-based number among the batch's provider batches")
    model_group: str = Field(max_length=200)
    deployment_id: str = Field(max_length=200)
    endpoint: str = Field(max_length=64)
    state: str = Field(max_length=16, index=True)
    lines: int = 0
    bytes: int = Field(default=0, sa_type=sa.BigInteger)
    claim: int = Field(default=0, description="bumped by every worker that takes it; fences its writes")
    worker_id: Optional[str] = Field(default=None, max_length=64, index=True)
    cancel_requested: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    cancel_sent: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    input_file_id: Optional[str] = Field(default=None, max_length=200)
    remote_id: Optional[str] = Field(default=None, max_length=200)
    output_ref: Optional[str] = Field(default=None, sa_type=sa.Text)
    error_ref: Optional[str] = Field(default=None, sa_type=sa.Text)
    provider_status: Optional[str] = Field(default=None, max_length=32)
    message: Optional[str] = Field(default=None, sa_type=sa.Text)
    created_at: float
    upload_started_at: Optional[float] = None
    create_started_at: Optional[float] = None
    submitted_at: Optional[float] = None
    ended_at: Optional[float] = None
    imported_at: Optional[float] = None
    next_poll_at: float = 0.0
    polls: int = 0


class WorkerRecord(SQLModel, table=True):
    """A worker process and its heartbeat; a stale heartbeat lets others take its jobs."""

    __tablename__ = "workers"

    id: str = Field(primary_key=True, max_length=64)
    hostname: str = Field(max_length=255)
    pid: int
    concurrency: int
    groups: Optional[str] = Field(default=None, sa_type=sa.Text)
    started_at: float
    heartbeat_at: float = Field(index=True)
    stopped_at: Optional[float] = None


class CachedResponse(SQLModel, table=True):
    """The response cache when there is no Redis (embedded mode): request key -> response."""

    __tablename__ = "response_cache"

    key: str = Field(primary_key=True, max_length=64)
    body: str = Field(sa_type=sa.Text)
    expires_at: float = Field(index=True)


class ApiKeyRecord(SQLModel, table=True):
    """A key of the HTTP API: only the sha256 of its secret is stored."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200, unique=True)
    secret_hash: str = Field(max_length=64, unique=True)
    models: Optional[str] = Field(default=None, sa_type=sa.Text, description="JSON list; NULL: every group")
    max_priority: Optional[int] = Field(default=None, description="the most urgent priority allowed")
    max_cost: Optional[float] = Field(default=None, description="ceiling of a batch's max_cost")
    created_at: float
    revoked_at: Optional[float] = None


class FileStatus:
    UPLOADED = "uploaded"  # parts are being written; never shown, deleted if the upload stops
    PROCESSED = "processed"  # whole


class StoredFile(SQLModel, table=True):
    """An uploaded file's metadata; its bytes are in ``file_parts``."""

    __tablename__ = "files"
    __table_args__ = (sa.Index("ix_files_owner_created_at", "owner", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    owner: Optional[str] = Field(default=None, max_length=40, description="API key id; NULL: direct")
    filename: str = Field(max_length=512, description="metadata only: never used as a path")
    purpose: str = Field(max_length=32)
    bytes: int = Field(sa_type=sa.BigInteger)
    created_at: float
    expires_at: Optional[float] = Field(
        default=None, description="while uploaded: the upload's lease, renewed by every part"
    )
    status: str = Field(max_length=16)


class FilePart(SQLModel, table=True):
    """One part (1 MiB) of a file's bytes, so no upload or download is ever whole in memory."""

    __tablename__ = "file_parts"

    file_id: str = Field(primary_key=True, max_length=40)
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_type=sa.LargeBinary)


class FleetTurn(SQLModel, table=True):
    """A chore one worker of the fleet does now and then (retention): who may do it next, when."""

    __tablename__ = "fleet_turns"

    name: str = Field(primary_key=True, max_length=40)
    next_at: float = Field(description="database clock; the first worker to see it passed takes the turn")


batches = Batch.__table__
jobs = Job.__table__
attempts = Attempt.__table__
workers = WorkerRecord.__table__
response_cache = CachedResponse.__table__
api_keys = ApiKeyRecord.__table__
files = StoredFile.__table__
file_parts = FilePart.__table__
provider_batches = ProviderBatch.__table__
fleet_turns = FleetTurn.__table__
metadata = SQLModel.metadata
