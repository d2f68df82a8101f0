"""Submitting a batch: validate everything first, then store jobs in chunks, then wake workers.

Pass 1 validates every line and spools the valid ones (already compacted) to a temporary
file, so the input is read once, never held in memory, and may come from stdin. Nothing is
stored unless the whole input is valid (or ``skip_invalid`` is set). Pass 2 inserts the
spooled jobs in chunked transactions; workers may start on the first chunks while later
ones are still being written. The batch stays ``validating`` until every job is stored.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import orjson

from dispatcher.config.schema import DispatcherConfig
from dispatcher.durations import parse_duration
from dispatcher.errors import InputError
from dispatcher.intake.reader import Source, describe, iter_lines
from dispatcher.intake.validate import JobSpec, LineValidator, Problem
from dispatcher.store import batches as batch_sql
from dispatcher.store import jobs as job_sql
from dispatcher.store.database import Database
from dispatcher.store.tables import BatchStatus, JobStatus

log = logging.getLogger(__name__)

MAX_REPORTED_PROBLEMS = 20
INSERT_CHUNK = 2000
MAX_STORED_INVALID_LINE = 10_000
# Wake messages per group and batch: enough to wake every worker of a large fleet once.
MAX_WAKE_COPIES = 32


@dataclass
class SubmitOptions:
    model: str | None = None
    priority: int | None = None
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    skip_invalid: bool = False
    idempotency_key: str | None = None
    completion_window: str | None = None
    weight: float = 1.0
    not_before: float | None = None  # Unix time before which no job of the batch starts
    max_cost: float | None = None  # USD; no new job starts once spent + reserved reaches it
    cache_mode: int = 0  # 0 config default, 1 deterministic requests, 2 forced


@dataclass
class SubmitResult:
    batch_id: str
    total: int
    invalid: int
    groups: dict[str, int]
    existing: bool = False
    problems: list[Problem] = field(default_factory=list)


def default_group(model: str | None, default_model: str | None, groups: list[str]) -> str | None:
    """The model group of a request that names none: --model, else the configured default,
    else the only group of a config that has one."""
    return model or default_model or (groups[0] if len(groups) == 1 else None)


def new_batch_id() -> str:
    return "batch_" + uuid.uuid4().hex[:24]


def submit(
    source: Source,
    options: SubmitOptions,
    *,
    config: DispatcherConfig,
    groups: list[str],
    database: Database,
    check_services: Callable[[], None],
    notify: Callable[[dict[str, int]], None],
) -> SubmitResult:
    """Validate, store and enqueue one batch; raises InputError listing the first bad lines."""
    settings = config.dispatcher_settings
    if options.idempotency_key:
        with database.read() as connection:
            existing = batch_sql.find_by_idempotency_key(connection, options.idempotency_key)
        if existing is not None:
            return SubmitResult(existing.id, existing.total, 0, {}, existing=True)

    window_s = _window_seconds(options.completion_window or settings.completion_window)  # before reading
    validator = LineValidator(
        known_groups=groups,
        default_group=default_group(options.model, settings.default_model, groups),
        default_max_tokens=settings.default_max_tokens,
    )
    with tempfile.TemporaryFile(prefix="llmd-spool-") as spool:
        counts = _validate_into_spool(source, validator, spool, options.skip_invalid)
        if counts.problems and not options.skip_invalid:
            raise InputError(_problem_summary(counts), counts.problems[:MAX_REPORTED_PROBLEMS])
        if counts.total == 0:
            raise InputError(f"{describe(source) or 'the input'} holds no requests")
        check_services()
        spool.seek(0)
        batch_id = _store(spool, counts, options, config, database, source, notify, validator, window_s)
    log.info("batch %s: %d requests stored (%d invalid)", batch_id, counts.total, counts.invalid)
    return SubmitResult(
        batch_id, counts.total, counts.invalid, counts.groups, problems=counts.problems
    )


@dataclass
class _Counts:
    total: int = 0
    invalid: int = 0
    groups: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def _validate_into_spool(source: Source, validator: LineValidator, spool, skip_invalid: bool) -> _Counts:
    counts = _Counts()
    for line_no, raw in iter_lines(source):
        result = validator.validate(line_no, raw)
        if isinstance(result, JobSpec):
            counts.groups[result.model_group] = counts.groups.get(result.model_group, 0) + 1
            record = [
                "ok", line_no, result.custom_id, result.model_group, result.body,
                result.priority, result.est_prompt_tokens, result.est_completion_tokens,
            ]
        else:
            counts.invalid += 1
            if len(counts.problems) < MAX_REPORTED_PROBLEMS:
                counts.problems.append(result)
            if not skip_invalid:
                continue  # keep validating to report more problems; store nothing
            text = raw if isinstance(raw, str) else (
                json.dumps(raw) if isinstance(raw, dict) else raw.decode("utf-8", "replace")
            )
            record = [
                "invalid", line_no, validator.storable_id_for_invalid(line_no, raw),
                text.strip()[:MAX_STORED_INVALID_LINE], result.code, result.message,
            ]
        counts.total += 1
        spool.write(orjson.dumps(record) + b"\n")
    return counts


def _problem_summary(counts: _Counts) -> str:
    shown = counts.problems[:MAX_REPORTED_PROBLEMS]
    lines = [f"the input has {counts.invalid} invalid line(s); nothing was submitted:"]
    lines += [f"  {p.message}" for p in shown]
    if counts.invalid > len(shown):
        lines.append(f"  ... and {counts.invalid - len(shown)} more")
    lines.append("fix them, or pass --skip-invalid to submit the valid lines and record the others as failed")
    return "\n".join(lines)


def _window_seconds(window: str) -> float:
    try:
        seconds = parse_duration(window)
    except ValueError as exc:
        raise InputError(f"--completion-window: {exc}") from None
    if seconds <= 0:
        raise InputError(f"--completion-window: {window!r} leaves no time to run anything; give e.g. 24h")
    return seconds


def _store(spool, counts: _Counts, options: SubmitOptions, config: DispatcherConfig,
           database: Database, source: Source, notify: Callable[[dict[str, int]], None],
           validator: LineValidator, window_s: float) -> str:
    settings = config.dispatcher_settings
    now = time.time()
    batch_id = new_batch_id()
    priority = options.priority if options.priority is not None else settings.default_priority
    window = options.completion_window or settings.completion_window
    expires_at = max(now, options.not_before or 0.0) + window_s
    with database.write() as connection:
        batch_sql.insert_batch(
            connection,
            dict(
                id=batch_id,
                name=options.name,
                status=BatchStatus.VALIDATING,
                model=options.model,
                priority=priority,
                weight=options.weight,
                metadata_json=json.dumps(options.metadata) if options.metadata else None,
                input_file=describe(source),
                idempotency_key=options.idempotency_key,
                completion_window=window,
                created_at=now,
                expires_at=expires_at,
                not_before=options.not_before,
                max_cost=options.max_cost,
                cache_mode=options.cache_mode,
                total=counts.total,
                failed=counts.invalid,
                # OpenAI's Batch.errors: the lines refused by validation (the first ones).
                errors_json=json.dumps({"object": "list", "data": [p.as_dict() for p in counts.problems]})
                if counts.problems else None,
            ),
        )
    try:
        woken = False
        frontier = _FairFrontier(database, now, settings.fair_share)
        rows = _rows(spool, batch_id, priority, options, now, expires_at, frontier, validator)
        for chunk in _chunks(rows, INSERT_CHUNK):
            with database.write() as connection:
                job_sql.insert_jobs(connection, chunk)
            if not woken:
                notify({group: 1 for group in counts.groups})
                woken = True
        with database.write() as connection:
            batch_sql.set_status(
                connection, batch_id, BatchStatus.IN_PROGRESS, when=time.time(),
                from_statuses=[BatchStatus.VALIDATING],
            )
            batch_sql.finish_if_done(connection, [batch_id], time.time())
    except BaseException as exc:
        _mark_failed(database, batch_id, f"submission interrupted while storing jobs: {exc!r}")
        raise
    claim_batch = settings.worker.claim_batch
    notify({
        group: min(MAX_WAKE_COPIES, -(-n // claim_batch)) for group, n in counts.groups.items()
    })
    return batch_id


class _FairFrontier:
    """Where this batch's fair positions start at each (group, priority) level it uses:
    at the level's frontier (take turns with the batches waiting there), or after the last
    of them when fair_share is off (first submitted, first served)."""

    def __init__(self, database: Database, now: float, fair_share: bool):
        self._database = database
        self._now = now
        self._fair_share = fair_share
        self._starts: dict[tuple[str, int], float] = {}

    def start(self, group: str, priority: int) -> float:
        key = (group, priority)
        if key not in self._starts:
            with self._database.read() as connection:
                if self._fair_share:
                    self._starts[key] = job_sql.fair_frontier(connection, group, priority, self._now)
                else:
                    self._starts[key] = job_sql.queue_end(connection, group, priority)
        return self._starts[key]


def _rows(spool, batch_id: str, priority: int, options: SubmitOptions, now: float,
          expires_at: float, frontier: _FairFrontier, validator: LineValidator) -> Iterator[dict]:
    # Fair position: the level's frontier plus the job's place in the batch over its weight,
    # so batches of one priority take turns (weighted round-robin), FIFO inside each batch.
    weight = options.weight or 1.0
    not_before = options.not_before or 0.0
    for seq, raw in enumerate(spool):
        record = orjson.loads(raw)
        row = dict(
            batch_id=batch_id, seq=seq, line_no=record[1],
            # Lines without a custom_id are named now that every given id is known.
            custom_id=record[2] if record[2] is not None else validator.generated_id(record[1]),
            fair_key=float(seq), claim=0, attempts=0, retries=0, not_before=not_before,
            expires_at=expires_at, cache_mode=options.cache_mode,
            created_at=now, finished_at=None, error_code=None, error_message=None,
        )
        if record[0] == "ok":
            _, _, _, group, body, line_priority, est_prompt, est_completion = record
            job_priority = priority if line_priority is None else line_priority
            row.update(
                model_group=group, body=body, status=JobStatus.QUEUED,
                priority=job_priority,
                fair_key=frontier.start(group, job_priority) + seq / weight,
                est_prompt_tokens=est_prompt, est_completion_tokens=est_completion,
            )
        else:
            _, _, _, text, code, message = record
            row.update(
                model_group=options.model or "", body=text, status=JobStatus.FAILED,
                priority=priority, est_prompt_tokens=0, est_completion_tokens=0,
                finished_at=now, error_code=code, error_message=message,
            )
        yield row


def _chunks(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _mark_failed(database: Database, batch_id: str, reason: str) -> None:
    """Best effort: a batch that could not be stored whole is failed, its stored jobs cancelled."""
    try:
        now = time.time()
        with database.write() as connection:
            cancelled = batch_sql.cancel_queued_jobs(connection, batch_id, now)
            batch_sql.set_status(
                connection, batch_id, BatchStatus.FAILED, when=now, error_message=reason
            )
            log.error("batch %s failed while being stored (%d jobs cancelled): %s", batch_id, cancelled, reason)
    except Exception as exc:  # noqa: BLE001 - the original error is what the user must see
        log.error("could not mark batch %s failed: %s", batch_id, exc)
