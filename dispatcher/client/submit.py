"""Submitting a batch: validate everything first, then store jobs in chunks, then wake workers.

Pass 1 validates every line and spools the valid ones (already compacted) to a temporary
file, so the input is read once, never held in memory, and may come from stdin. Nothing is
stored unless the whole input is valid (or ``skip_invalid`` is set). Pass 2 inserts the
spooled jobs in chunked transactions. The batch stays ``validating`` until every job is
stored, and workers start none of its jobs before that: a submit killed half-way must not
leave a half batch running.

While storing, each chunk's transaction renews a *storing lease* on the batch (database
clock). A batch whose lease went stale (its submit died) is cleaned up by worker housekeeping
or by the next submit with its idempotency key: its jobs are deleted, it ends ``failed`` (or
``cancelled`` if it was being cancelled) and its idempotency key is freed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Mapping

import orjson
import sqlalchemy as sa

from dispatcher.client.option_limits import check_options
from dispatcher.config.schema import DispatcherConfig
from dispatcher.deployments import Deployments, build_deployments
from dispatcher.durations import parse_duration
from dispatcher.errors import DispatcherError, InputError, ServiceUnavailableError, UsageError
from dispatcher.intake.reader import Source, describe, iter_lines
from dispatcher.intake.validate import CHAT_COMPLETIONS, JobSpec, LineValidator, Problem, invalid_line_text
from dispatcher.remote.route import REALTIME, RouteChoice, choose_route
from dispatcher.scheduling.fair import BatchPositions
from dispatcher.store import batches as batch_sql
from dispatcher.store import jobs as job_sql
from dispatcher.store.clock import read_database_clock
from dispatcher.store.database import Database, database_now
from dispatcher.store.tables import BatchStatus, JobStatus, Route
from dispatcher.submit_options import SubmitOptions

log = logging.getLogger(__name__)

MAX_REPORTED_PROBLEMS = 20
INSERT_CHUNK = 2000
MAX_STORED_INVALID_LINE = 10_000
# Wake messages per group and batch: enough to wake every worker of a large fleet once.
MAX_WAKE_COPIES = 32
# How often a submit waiting for another one storing the same idempotency key looks again.
KEY_WAIT_POLL_S = 0.25


@dataclass
class SubmitResult:
    batch_id: str
    total: int
    invalid: int
    groups: dict[str, int]
    existing: bool = False
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. the wake message could not be sent


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
    owner: str | None = None,
    input_file_id: str | None = None,
    max_priority: int | None = None,
    request_checks: Mapping[str, Callable[..., str | None]] | None = None,
    endpoint: str | None = None,
    deployments: Deployments | None = None,
) -> SubmitResult:
    """Validate, store and enqueue one batch; raises InputError listing the first bad lines.

    With an idempotency key already used, returns that batch (``existing``), waiting for it
    while another submit is still storing it. ``owner`` (an API key id) owns the batch, and
    its idempotency keys are its own; ``max_priority`` refuses lines asking for a more urgent
    priority (an API key's limit). ``groups`` are the model groups lines may name.
    ``endpoint``: the url every line must use (the HTTP API's batch ``endpoint``); without it
    the first valid line's url is the batch's. ``deployments``: the config's, already built
    (they decide the route of ``--via auto`` and ``provider-batch``); built here when not given.
    """
    settings = config.dispatcher_settings
    check_options(options)
    lease_s = storing_lease(config)
    if options.idempotency_key:
        options = replace(options, idempotency_key=owned_idempotency_key(options.idempotency_key, owner))
        existing = _batch_with_key(database, options.idempotency_key, owner)
        if existing is not None:
            return existing

    window_s = _window_seconds(options.completion_window or settings.completion_window)  # before reading
    validator = LineValidator(
        known_groups=groups,
        default_group=default_group(options.model, settings.default_model, groups),
        default_max_tokens=settings.default_max_tokens,
        request_checks=request_checks,
        endpoint=endpoint,
    )
    with tempfile.TemporaryFile(prefix="llmd-spool-") as spool:
        counts = _validate_into_spool(source, validator, spool, options.skip_invalid, max_priority)
        if counts.problems and not options.skip_invalid:
            raise InputError(_problem_summary(counts), counts.problems[:MAX_REPORTED_PROBLEMS])
        if counts.total == 0:
            raise InputError(f"{describe(source) or 'the input'} holds no requests")
        route = _route(options, config, deployments, counts, window_s, validator.endpoint)
        check_services()
        while True:
            spool.seek(0)
            try:
                batch_id = _store(spool, counts, options, config, database, source, validator,
                                  window_s, lease_s, owner=owner, input_file_id=input_file_id, route=route)
                break
            except _KeyTaken:
                # Another submit with this key won the race: its batch is the answer (unless
                # it was given up meanwhile, which frees the key: then store ours).
                existing = _batch_with_key(database, options.idempotency_key or "", owner)
                if existing is not None:
                    return existing
    log.info("batch %s: %d requests stored (%d invalid)", batch_id, counts.total, counts.invalid)
    result = SubmitResult(
        batch_id, counts.total, counts.invalid, counts.groups, problems=counts.problems
    )
    realtime_groups = {group: n for group, n in counts.groups.items() if not route.holds(group)}
    warning = _wake_workers(notify, batch_id, realtime_groups, settings.worker.claim_batch)
    if warning:
        result.warnings.append(warning)
    return result


def _route(options: SubmitOptions, config: DispatcherConfig, deployments: Deployments | None,
           counts: "_Counts", window_s: float, endpoint: str | None) -> RouteChoice:
    via = options.via or config.dispatcher_settings.default_via
    if via == Route.REALTIME:
        return REALTIME
    priority = options.priority if options.priority is not None else config.dispatcher_settings.default_priority
    return choose_route(via, priority=priority, window_s=window_s,
                        deployments=deployments or build_deployments(config), groups=counts.groups,
                        endpoint=endpoint)


def _wake_workers(notify: Callable[[dict[str, int]], None], batch_id: str, groups: dict[str, int],
                  claim_batch: int) -> str | None:
    """Send the wake messages; a warning (not an error) if Redis cannot take them."""
    try:
        notify({group: min(MAX_WAKE_COPIES, -(-n // claim_batch)) for group, n in groups.items()})
    except ServiceUnavailableError as exc:
        # The batch is stored and will run: failing now would make a user who retries pay twice.
        warning = (f"batch {batch_id} is stored, but the message waking workers could not be sent "
                   f"({exc}); workers will find it at their next poll")
        log.warning(warning)
        return warning
    return None


def storing_lease(config: DispatcherConfig) -> float:
    """Seconds a submit may go without storing a chunk before it is taken for dead: the
    same patience as for a silent worker."""
    return config.dispatcher_settings.worker.dead_after


def owned_idempotency_key(key: str, owner: str | None) -> str:
    """The key as stored: an API key's idempotency keys live in a space of their own, so one
    team can neither find another's batch by guessing its key nor block a key it uses. (A
    digest, so the stored value fits the column whatever the key's length.)"""
    if owner is None:
        return key
    return f"{owner}:{hashlib.sha256(key.encode()).hexdigest()}"


def _batch_with_key(database: Database, key: str, owner: str | None) -> SubmitResult | None:
    """The batch already submitted with ``key``, once it is stored whole; None if there is
    none (or it was left half-stored by a submit that died: then it is cleaned up here)."""
    said = False
    while True:
        with database.read() as connection:
            row = batch_sql.find_by_idempotency_key(connection, key)
        if row is None:
            return None
        if owner is not None and row.owner != owner:
            # Only a direct submit that copied an owned key's stored form gets here.
            raise UsageError("this idempotency key is taken; choose another one")
        if row.storing_until is None:
            return SubmitResult(row.id, row.total, 0, {}, existing=True)
        with database.write() as connection:
            ended = batch_sql.abandon_storing(
                connection, row.id, "the submit storing this batch stopped before it finished",
                only_if_stale=True,
            )
        if ended is not None:
            log.warning("batch %s with this idempotency key was left half-stored by a submit that "
                        "stopped; it is now %s and a new batch is made", row.id, ended)
            return None
        if not said:
            log.warning("batch %s with this idempotency key is being stored by another submit; "
                        "waiting for it", row.id)
            said = True
        time.sleep(KEY_WAIT_POLL_S)


@dataclass
class _Counts:
    total: int = 0
    invalid: int = 0
    groups: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def _validate_into_spool(source: Source, validator: LineValidator, spool, skip_invalid: bool,
                         max_priority: int | None) -> _Counts:
    counts = _Counts()
    for line_no, raw in iter_lines(source):
        result = _within_priority_limit(validator.validate(line_no, raw), max_priority)
        if isinstance(result, JobSpec):
            counts.groups[result.model_group] = counts.groups.get(result.model_group, 0) + 1
            record = [
                "ok", line_no, result.custom_id, result.model_group, result.body,
                result.priority, result.est_prompt_tokens, result.est_completion_tokens,
                result.endpoint,
            ]
        else:
            counts.invalid += 1
            if len(counts.problems) < MAX_REPORTED_PROBLEMS:
                counts.problems.append(result)
            if not skip_invalid:
                continue  # keep validating to report more problems; store nothing
            record = [
                "invalid", line_no, validator.storable_id_for_invalid(line_no, raw),
                invalid_line_text(raw).strip()[:MAX_STORED_INVALID_LINE], result.code, result.message,
            ]
        counts.total += 1
        spool.write(orjson.dumps(record) + b"\n")
    return counts


def _within_priority_limit(result: JobSpec | Problem, max_priority: int | None) -> JobSpec | Problem:
    """A line asking for a more urgent priority than allowed is refused like any bad line."""
    if max_priority is None or not isinstance(result, JobSpec) or result.priority is None:
        return result
    if result.priority >= max_priority:
        return result
    return Problem(
        result.line, "invalid_priority",
        f"line {result.line}: priority {result.priority} is more urgent than this API key may ask "
        f"for (at most {max_priority}; 0 is the most urgent)", "priority",
    )


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


class _KeyTaken(Exception):
    """Another submit stored a batch with this idempotency key first."""


class _StoringStopped(Exception):
    """The batch stopped being ours to store: cancelled, or given up as stale."""


def _store(spool, counts: _Counts, options: SubmitOptions, config: DispatcherConfig,
           database: Database, source: Source, validator: LineValidator, window_s: float,
           lease_s: float, *, owner: str | None, input_file_id: str | None,
           route: RouteChoice = REALTIME) -> str:
    settings = config.dispatcher_settings
    # Workers compare expires_at and not_before with the database's clock: write them on it.
    with database.read() as connection:
        offset = read_database_clock(connection).offset
    now = time.time() + offset
    if options.not_before:
        options = replace(options, not_before=options.not_before + offset)
    batch_id = new_batch_id()
    priority = options.priority if options.priority is not None else settings.default_priority
    window = options.completion_window or settings.completion_window
    expires_at = max(now, options.not_before or 0.0) + window_s
    batch = dict(
        id=batch_id,
        name=options.name,
        status=BatchStatus.VALIDATING,
        endpoint=validator.endpoint or CHAT_COMPLETIONS,
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
        via=route.route,
        owner=owner,
        input_file_id=input_file_id,
        total=counts.total,
        failed=counts.invalid,
        # OpenAI's Batch.errors: the lines refused by validation (the first ones).
        errors_json=json.dumps({"object": "list", "data": [p.as_dict() for p in counts.problems]})
        if counts.problems else None,
    )
    try:
        with database.write() as connection:
            batch["storing_until"] = database_now(connection) + lease_s
            batch_sql.insert_batch(connection, batch)
    except sa.exc.IntegrityError:
        if options.idempotency_key:  # the only unique value that is not random
            raise _KeyTaken() from None
        raise
    positions = BatchPositions(
        options.weight, fair_share=settings.fair_share,
        read_frontier=_level_reader(database, job_sql.fair_frontier, now),
        read_queue_end=_level_reader(database, job_sql.queue_end),
    )
    rows = _rows(spool, batch_id, priority, options, now, expires_at, positions, validator, route)
    _store_jobs(database, batch_id, rows, lease_s, offset)
    return batch_id


def _store_jobs(database: Database, batch_id: str, rows: Iterator[dict], lease_s: float,
                offset: float) -> None:
    """Insert the jobs chunk by chunk, renewing the storing lease, then let the batch run."""
    try:
        for chunk in _chunks(rows, INSERT_CHUNK):
            with database.write() as connection:
                job_sql.insert_jobs(connection, chunk)
                # In the chunk's transaction: if the batch was cancelled or given up, the
                # chunk is rolled back, so no job is ever added to an ended batch.
                if not batch_sql.renew_storing_lease(connection, batch_id, lease_s):
                    raise _StoringStopped()
        with database.write() as connection:
            if not batch_sql.finish_storing(connection, batch_id, time.time() + offset):
                raise _StoringStopped()
            batch_sql.finish_if_done(connection, [batch_id], time.time() + offset)
    except _StoringStopped:
        status = _abandon(database, batch_id, "cancelled while its requests were being stored")
        if status == BatchStatus.CANCELLED:
            raise DispatcherError(
                f"batch {batch_id} was cancelled while its requests were being stored; none ran"
            ) from None
        raise DispatcherError(
            f"batch {batch_id} was given up while its requests were being stored: this submit "
            f"stored nothing for {lease_s:g}s (worker.dead_after), so it was taken for dead; "
            "none of its requests ran. Submit again"
        ) from None
    except BaseException as exc:
        # The first line only: a database error's full text repeats the SQL statement.
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        _abandon(database, batch_id, f"submission interrupted while storing jobs: {type(exc).__name__}"
                 + (f": {reason}" if reason else ""))
        raise


def _level_reader(database: Database, read: Callable[..., float], *args) -> Callable[[str, int], float]:
    """``read(connection, group, priority, *args)`` in a read transaction of its own."""
    def at_level(group: str, priority: int) -> float:
        with database.read() as connection:
            return read(connection, group, priority, *args)
    return at_level


def _rows(spool, batch_id: str, priority: int, options: SubmitOptions, now: float,
          expires_at: float, positions: BatchPositions, validator: LineValidator,
          route: RouteChoice) -> Iterator[dict]:
    not_before = options.not_before or 0.0
    for seq, raw in enumerate(spool):
        record = orjson.loads(raw)
        row = dict(
            batch_id=batch_id, seq=seq, line_no=record[1],
            # Lines without a custom_id are named now that every given id is known.
            custom_id=record[2] if record[2] is not None else validator.generated_id(record[1]),
            fair_key=float(seq), claim=0, attempts=0, retries=0, not_before=not_before,
            expires_at=expires_at, cache_mode=options.cache_mode,
            created_at=now, finished_at=None, error_code=None, error_message=None, endpoint=None,
        )
        if record[0] == "ok":
            _, _, _, group, body, line_priority, est_prompt, est_completion, endpoint = record
            job_priority = priority if line_priority is None else line_priority
            row.update(
                model_group=group, body=body,
                status=JobStatus.HELD if route.holds(group) else JobStatus.QUEUED,
                priority=job_priority,
                fair_key=positions.position(group, job_priority, seq),  # scheduling/fair.py
                est_prompt_tokens=est_prompt, est_completion_tokens=est_completion, endpoint=endpoint,
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


def _abandon(database: Database, batch_id: str, reason: str) -> str | None:
    """Best effort: end a batch that could not be stored whole (its jobs never ran); if this
    fails too, its storing lease goes stale and housekeeping does it."""
    try:
        with database.write() as connection:
            status = batch_sql.abandon_storing(connection, batch_id, reason)
        if status is not None:
            log.error("batch %s is %s: %s; its stored requests were removed", batch_id, status, reason)
        return status
    except Exception as exc:  # noqa: BLE001 - the original error is what the user must see
        log.error("could not end batch %s (housekeeping will, once its storing lease is stale): %s",
                  batch_id, exc)
        return None
