"""The Python client API; the CLI is a thin layer over it.

    from dispatcher import Client

    client = Client("prod.yaml")                    # or Client() for the usual config lookup
    batch = client.submit("prompts.jsonl", priority=5)
    info = client.wait(batch.batch_id)                # BatchInfo once the batch has ended
    for line in client.results(batch.batch_id):       # OpenAI batch output lines, as dicts
        print(line["custom_id"], line["response"]["body"]["choices"][0]["message"]["content"])

With no ``redis_url`` configured the client is *embedded* (``dispatcher.backends`` decides):
``run`` (or ``start_worker``) processes jobs in this process with the same engine the worker
processes use.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import orjson

from dispatcher.backends import Backends, build_backends
from dispatcher.client import keys as client_keys
from dispatcher.client.awaited import AwaitedMethods, CompletionFailed, prepare_awaited
from dispatcher.client.awaited import CompletionTimeout  # noqa: F401 - part of this module's API
from dispatcher.client.batch_info import BatchInfo, provider_batch_view
from dispatcher.client.export import (
    FAILED_STATUSES,
    ExportCounts,
    Target,
    error_line,
    iter_job_rows,
    output_line,
    write_results,
)
from dispatcher.client.completion import completion_body
from dispatcher.client.files import FileMethods
from dispatcher.client.keys import ApiKeyMethods
from dispatcher.client.submit import SubmitResult, default_group, submit
from dispatcher.config.loader import apply_env_overrides, load_config
from dispatcher.config.schema import DispatcherConfig, WorkerSettings
from dispatcher.deployments import Deployments, build_deployments
from dispatcher.errors import NotFoundError, UsageError
from dispatcher.intake.reader import Source
from dispatcher.priority import parse_priority
from dispatcher.store import batches as batch_sql
from dispatcher.store import provider_batches as part_sql
from dispatcher.store import retention
from dispatcher.store import workers as worker_sql
from dispatcher.store.database import Database
from dispatcher.store.migrate import ensure_schema
from dispatcher.store.tables import BatchStatus, JobStatus, Route
from dispatcher.submit_options import SubmitOptions
from dispatcher.times import parse_time_or_ago

if TYPE_CHECKING:  # pragma: no cover - the engine is loaded only when a worker starts here
    from dispatcher.engine.node import WorkerNode
    from dispatcher.metrics import Metrics

Progress = Callable[[BatchInfo], None]
Moment = float | str | datetime


@dataclass(frozen=True)
class SchemaUpgrade:
    """What ``upgrade_schema`` did: revisions before and after (None: no schema)."""

    display_url: str  # the database's URL, without its password
    before: str | None
    after: str | None
    head: str | None

BATCH_STATUSES = (
    BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS, BatchStatus.FINALIZING, BatchStatus.COMPLETED,
    BatchStatus.FAILED, BatchStatus.EXPIRED, BatchStatus.CANCELLING, BatchStatus.CANCELLED,
    BatchStatus.BUDGET_EXCEEDED,
)

# Why retry_failed refuses a batch in these states, and what can be done instead.
_NOT_RUN_AGAIN = (
    "a cancelled batch is not run again. Its failed and cancelled requests are listed (by "
    "custom_id) by `llm-dispatch results {batch} --errors failed.jsonl`; submit those lines "
    "of your input as a new batch"
)
_RETRY_REFUSALS = {
    BatchStatus.VALIDATING: "it is still being stored; retry its failed requests once it is in_progress",
    BatchStatus.CANCELLING: "it is being cancelled (calls in flight are finishing), and " + _NOT_RUN_AGAIN,
    BatchStatus.CANCELLED: _NOT_RUN_AGAIN,
}


class Client(ApiKeyMethods, FileMethods, AwaitedMethods):
    """Submit batches, follow them, read their results; API keys, uploaded files and awaited
    completions come from the mixins (``client/keys.py``, ``client/files.py``,
    ``client/awaited.py``)."""

    def __init__(
        self,
        config: DispatcherConfig | str | os.PathLike | None = None,
        *,
        database_url: str | None = None,
        redis_url: str | None = None,
    ):
        if isinstance(config, DispatcherConfig):
            self.config = apply_env_overrides(config)
            self.config_path: Path | None = None
        else:
            self.config, self.config_path = load_config(config)
        overrides = {}
        if database_url:
            overrides["database_url"] = database_url
        if redis_url is not None:
            overrides["redis_url"] = redis_url or None
        if overrides:
            settings = self.config.dispatcher_settings.model_copy(update=overrides)
            self.config = self.config.model_copy(update={"dispatcher_settings": settings})
        self.settings = self.config.dispatcher_settings
        self.backends: Backends = build_backends(self.settings)
        self._database: Database | None = None
        self._nodes: list[WorkerNode] = []  # in-process workers started by this client

    # -- connections -------------------------------------------------------------------

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: jobs run in this process."""
        return self.backends.embedded

    @cached_property
    def deployments(self) -> Deployments:
        # Built on first use: `db upgrade` needs no provider (nor its api_base variables).
        return build_deployments(self.config)

    @cached_property
    def request_checks(self) -> dict[str, Callable[[dict], str | None]]:
        """Per model group, what its adapters cannot send (submit refuses such lines at once)."""
        from dispatcher.providers.provider_set import request_checks  # httpx: not for `status`

        return request_checks(self.deployments)

    @property
    def database(self) -> Database:
        if self._database is None:
            database = Database(self.settings.database_url)
            ensure_schema(database)
            self._database = database
        return self._database

    @property
    def messaging(self):
        """Wake messages to workers (``backends.messaging``)."""
        return self.backends.messaging

    def close(self) -> None:
        """Stop the workers this client started (calls in flight get shutdown_grace), then let
        go of Redis and the database."""
        while self._nodes:
            node = self._nodes.pop()
            if not node.wait(0):  # a worker stopped by its owner is left as it is
                node.stop()
        self.backends.close()
        if self._database is not None:
            self._database.dispose()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- batches -----------------------------------------------------------------------

    def submit(
        self,
        source: Source,
        *,
        options: SubmitOptions | None = None,
        owner: str | None = None,
        input_file_id: str | None = None,
        **fields: Any,
    ) -> SubmitResult:
        """Validate and enqueue a batch from a JSONL path (``-`` for stdin), a file or dicts.

        Options are ``SubmitOptions`` fields, given as keywords or as an object, e.g.
        ``priority``: 0 (most urgent) to 9 or a name; ``weight``: share among batches of the
        same priority (2 = twice the turns); ``not_before``: when the batch may start (Unix
        seconds, a datetime, or ISO 8601 text; no zone means UTC) or ``delay`` ("10m");
        ``max_cost``: the batch's cost cap in USD (it stops starting jobs once it is reached);
        ``cache``: answer repeated requests from the response cache, whatever their temperature.

        ``owner``: the API key id the batch is submitted for: the key's limits apply (its model
        groups, its most urgent priority, lines included, and its cost ceiling; a breach of
        the batch's own options raises ``ForbiddenForKey``), and its idempotency keys are
        its own. ``input_file_id``: the uploaded file the input comes from (provenance).
        """
        options = replace(options, **fields) if options is not None else SubmitOptions(**fields)
        model = options.model
        if model is not None and model not in self.deployments.by_group:
            raise UsageError(
                f"unknown model group '{model}' (--model); the config defines: "
                + ", ".join(sorted(self.deployments.by_group))
            )
        groups = self.deployments.groups
        max_priority = None
        if owner is not None:
            key = client_keys.key_of_owner(self.database, owner)
            options = client_keys.options_under_key(options, key, self.settings.default_priority)
            groups = key.allowed_groups(groups)
            max_priority = key.max_priority
        options = replace(options, cache_mode=2 if options.cache else (1 if self.settings.cache.enabled else 0))
        messaging = self.messaging
        database = self.database

        def notify(groups: dict[str, int]) -> None:
            for group, copies in groups.items():
                messaging.notify([group], copies)

        return submit(
            source,
            options,
            config=self.config,
            groups=groups,
            database=database,
            check_services=self.backends.check,
            notify=notify,
            owner=owner,
            input_file_id=input_file_id,
            max_priority=max_priority,
            request_checks=self.request_checks,
            deployments=self.deployments,
        )

    def status(self, batch_id: str, *, owner: str | None = None) -> BatchInfo:
        """The batch's state; with ``owner`` (an API key id), another owner's batch is not found."""
        with self.database.read() as connection:
            row = batch_sql.get_batch(connection, batch_id)
            parts = part_sql.parts_of_batch(connection, batch_id) if row is not None and row.via != Route.REALTIME else []
        if row is None or (owner is not None and row.owner != owner):
            raise NotFoundError(f"no batch with id {batch_id} in {self.database.display_url}")
        return BatchInfo.from_row(row, [provider_batch_view(part) for part in parts])

    def list_batches(
        self, *, limit: int = 20, status: str | None = None, owner: str | None = None, after: str | None = None,
        kind: str | None = None,
    ) -> list[BatchInfo]:
        """Batches, newest first. ``owner``: only that API key's (None: every batch);
        ``after``: the id the previous page ended with (ask for ``limit + 1`` to learn
        whether there is a next page); ``kind``: ``batch`` or ``completion`` (None: both)."""
        if status is not None and status not in BATCH_STATUSES:
            raise UsageError(f"unknown batch status {status!r}; a batch is one of: {', '.join(BATCH_STATUSES)}")
        with self.database.read() as connection:
            cursor = None
            if after is not None:
                cursor = batch_sql.get_batch(connection, after)
                if cursor is None or (owner is not None and cursor.owner != owner):
                    raise NotFoundError(f"no batch with id {after} (the 'after' cursor)")
            rows = batch_sql.list_batches(connection, limit=limit, status=status, owner=owner, after=cursor,
                                          kind=kind)
        return [BatchInfo.from_row(row) for row in rows]

    def list(self, *, limit: int = 20, status: str | None = None) -> list[BatchInfo]:
        """Recent batches, newest first (``list_batches`` with its defaults)."""
        return self.list_batches(limit=limit, status=status)

    def wait(
        self,
        batch_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        on_progress: Progress | None = None,
    ) -> BatchInfo:
        """Poll until the batch ends (or ``timeout`` passes); returns its last state.

        In embedded mode (no redis_url) nothing else can run the jobs, so unless this client
        already started a worker, one starts in this process (stopped by ``close``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.status(batch_id)
            if on_progress is not None:
                on_progress(info)
            if info.done:
                return info
            self._ensure_local_worker()
            if deadline is not None and time.monotonic() >= deadline:
                return info
            time.sleep(poll_interval)

    def cancel(self, batch_id: str, *, owner: str | None = None) -> BatchInfo:
        """Queued jobs will not run; in-flight ones finish; the batch ends ``cancelled``."""
        info = self.status(batch_id, owner=owner)
        if info.done:
            return info
        now = time.time()
        with self.database.write() as connection:
            cancelled = batch_sql.cancel_queued_jobs(connection, batch_id, now)
            batch_sql.add_counters(connection, {batch_id: {"cancelled": cancelled}})
            batch_sql.set_status(
                connection,
                batch_id,
                BatchStatus.CANCELLING,
                when=now,
                from_statuses=[BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS],
            )
            batch_sql.finish_if_done(connection, [batch_id], now)
        return self.status(batch_id)

    def reprioritize(self, batch_id: str, priority: int | str) -> tuple[BatchInfo, int]:
        """Change the priority of a batch's waiting jobs; returns (batch, jobs moved)."""
        level = parse_priority(priority)
        info = self.status(batch_id)
        if info.done:
            raise UsageError(f"batch {batch_id} is {info.status}: nothing is waiting")
        with self.database.write() as connection:
            moved, groups = batch_sql.reprioritize(connection, batch_id, level, time.time())
        self.messaging.notify_quietly(groups)
        return self.status(batch_id), moved

    def complete(
        self,
        request: str | dict[str, Any],
        *,
        model: str | None = None,
        priority: int | str | None = "urgent",
        timeout: float | None = 300.0,
        poll_interval: float = 0.5,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        owner: str | None = None,
    ) -> dict[str, Any]:
        """One chat completion through the queue: submit, wait, return the response body.
        It takes the awaited path (client/awaited.py): its result is written and announced at
        once; ``poll_interval`` is how often SQL is read should an announcement be lost.

        ``request`` is a prompt (sent as one user message) or a chat-completions body;
        ``system`` goes first as a system message, ``max_tokens`` and ``temperature`` are
        set on the body. Raises CompletionFailed (with the error line) when the request
        fails, and TimeoutError when no result came within ``timeout`` seconds (the job
        keeps its place in the queue; its result stays retrievable by its batch id).
        ``owner``: the API key id it is sent for (its limits apply, as for ``submit``).
        """
        body = completion_body(request, system=system, max_tokens=max_tokens, temperature=temperature)
        groups = self.deployments.groups
        group = body.get("model") or default_group(model, self.settings.default_model, groups)
        if not group:
            raise UsageError(
                f"which model group? pass --model (model=...) or set dispatcher_settings.default_model; "
                f"the config defines: {', '.join(sorted(groups))}"
            )
        options = SubmitOptions(priority=priority, model=group)  # checks and names the priority
        if owner is not None:
            key = client_keys.key_of_owner(self.database, owner)
            options = client_keys.options_under_key(options, key, self.settings.default_priority)
        awaited = prepare_awaited(
            {**body, "model": group}, groups=groups, settings=self.settings, name="complete", owner=owner,
            request_checks=self.request_checks,
            priority=self.settings.default_priority if options.priority is None else options.priority,
            max_cost=options.max_cost,
        )
        self._ensure_local_worker()
        row = self.await_completion(awaited, timeout=timeout, poll_interval=poll_interval)
        if row.status == JobStatus.SUCCEEDED:
            return orjson.loads(row.response)
        raise CompletionFailed(awaited.batch_id, orjson.loads(error_line(row)))

    def retry_failed(self, batch_id: str) -> tuple[BatchInfo, int]:
        """Queue a batch's failed requests again (invalid input lines stay failed)."""
        from dispatcher.durations import parse_duration
        from dispatcher.intake.validate import VALIDATION_CODES

        info = _not_pruned(self.status(batch_id))  # its requests are gone
        refusal = _RETRY_REFUSALS.get(info.status)
        if refusal:
            raise UsageError(f"batch {batch_id} is {info.status}: {refusal.format(batch=batch_id)}")
        now = time.time()
        expires_at = now + parse_duration(info.completion_window)
        with self.database.write() as connection:
            groups = batch_sql.requeue_failed_jobs(connection, batch_id, now, expires_at, VALIDATION_CODES)
            retried = info.failed - (self._status_in(connection, batch_id).failed)
        if groups:
            self.messaging.notify_quietly(groups)
        return self.status(batch_id), retried

    def _status_in(self, connection, batch_id: str) -> BatchInfo:
        return BatchInfo.from_row(batch_sql.get_batch(connection, batch_id))

    def recover(self) -> dict[str, Any]:
        """Rebuild what Redis lost: hand back jobs of dead workers, wake every group with work.

        Safe to run at any time and any number of times: it only re-announces queued jobs
        (duplicates are harmless) and requeues jobs whose worker has stopped heartbeating.
        """
        from dispatcher.engine.membership import take_over_dead_workers, tidy
        from dispatcher.store import jobs as job_sql
        from dispatcher.store.handback import release_orphaned_jobs

        self.backends.check()  # nothing can be announced without it: say so before any change
        now = time.time()
        worker = self.settings.worker
        with self.database.write() as connection:
            # The steps a worker's housekeeping runs, plus jobs no worker row accounts for.
            taken = take_over_dead_workers(
                connection, dead_after=worker.dead_after, now=now, reason="found dead by recover",
                max_worker_deaths=worker.max_worker_deaths,
            )
            released = [job for jobs in taken.values() for job in jobs]
            orphans = release_orphaned_jobs(connection, now, worker.dead_after, worker.max_worker_deaths)
            expired = tidy(connection, now).expired
        with self.database.read() as connection:
            ready = job_sql.queued_counts(connection)
        for group, count in ready.items():
            self.messaging.notify([group], min(32, -(-count // self.settings.worker.claim_batch)))
        return {
            "jobs_requeued_from_dead_workers": len(released) + orphans,
            "batches_with_expired_jobs": len(expired),
            "queued_jobs_by_group": ready,
        }

    def usage(self, *, by: str = "group", since: Moment | None = None, until: Moment | None = None) -> list[dict]:
        """Tokens, requests, failures and cost over provider calls, grouped by group/deployment/batch/day,
        or by API key (``key``: the name of the key whose batch it was, "(direct)" for batches
        submitted without one; rows also carry the key id as ``owner``).

        ``since``/``until``: Unix seconds, a datetime, ISO 8601 text (no zone means UTC), or a
        duration ago ("7d").
        """
        from dispatcher.store.usage import usage_report

        bounds = {name: _moment(name, value) for name, value in (("since", since), ("until", until))}
        with self.database.read() as connection:
            return usage_report(connection, by=by, **bounds)

    def deployment_report(self) -> list[dict]:
        """Each deployment's limits and prices; with Redis, also what the fleet uses now."""
        from dispatcher.client.deployment_report import deployment_report

        self.backends.check()
        return deployment_report(self.config, self.deployments, self.backends)

    # -- results -----------------------------------------------------------------------

    def results(self, batch_id: str, *, failed: bool = False) -> Iterator[dict[str, Any]]:
        """OpenAI batch output lines (or error lines with ``failed=True``), in submit order."""
        _not_pruned(self.status(batch_id))
        if failed:
            for row in iter_job_rows(self.database, batch_id, FAILED_STATUSES):
                yield orjson.loads(error_line(row))
        else:
            for row in iter_job_rows(self.database, batch_id, (JobStatus.SUCCEEDED,)):
                yield orjson.loads(output_line(row))

    def write_results(
        self, batch_id: str, output: Target | None, errors: Target | None = None
    ) -> ExportCounts:
        """Stream the output file (succeeded) and the error file (everything else).

        ``output`` and ``errors`` are paths (str or Path) or open files, binary or text.
        Writing an ended batch's output whole marks its results downloaded (retention).
        """
        info = _not_pruned(self.status(batch_id))
        counts = write_results(self.database, batch_id, output, errors)
        if info.done and output is not None:
            with self.database.write() as connection:
                retention.mark_downloaded(connection, batch_id, time.time())
        return counts

    def prune(
        self, *, finished_before: Moment, include_undownloaded: bool = False, dry_run: bool = False,
    ) -> retention.Pruned:
        """Drop the request and response bodies of batches that ended before ``finished_before``
        (a time, or a duration ago: "30d"); usage, cost and statuses stay. Batches whose
        results were never downloaded are kept unless ``include_undownloaded``."""
        cutoff = _moment("finished-before", finished_before)
        return retention.prune(
            self.database, finished_before=cutoff, now=time.time(),
            include_undownloaded=include_undownloaded, dry_run=dry_run,
        )

    # -- operations ----------------------------------------------------------------------

    def worker_settings(self) -> WorkerSettings:
        """The config's ``worker`` section (processes, poll interval, shutdown grace...)."""
        return self.settings.worker

    def unknown_groups(self, names: list[str]) -> list[str]:
        """The names that are not model groups of the config, sorted."""
        return sorted(set(names) - set(self.deployments.groups))

    def check_services(self) -> None:
        """Raise ServiceUnavailableError (or UsageError for an old schema) unless the database
        and, when configured, Redis answer."""
        self.database.check()
        self.backends.check()

    def hand_back_worker(self, worker_id: str, reason: str) -> int:
        """Requeue the jobs of a worker known to be dead (its attempts end abandoned)."""
        with self.database.write() as connection:
            released = worker_sql.reap_worker(
                connection, worker_id, time.time(), reason,
                max_worker_deaths=self.settings.worker.max_worker_deaths,
            )
        return len(released)

    def upgrade_schema(self, *, wait_s: float = 0.0, notify: Callable[[str], None] = lambda _: None) -> SchemaUpgrade:
        """Create or migrate the schema; wait up to ``wait_s`` for a server still starting.

        Works on a database whose schema is missing or old (which ``database`` refuses).
        """
        from dispatcher.store.migrate import current_revision, head_revision, upgrade, wait_for_database

        database = Database(self.settings.database_url)
        try:
            wait_for_database(database, wait_s, notify)
            before = current_revision(database)
            upgrade(database)
            return SchemaUpgrade(database.display_url, before, current_revision(database),
                                 head_revision(database))
        finally:
            database.dispose()

    def live_workers(self) -> list:
        with self.database.read() as connection:
            return worker_sql.live_workers(connection, self.settings.worker.dead_after)

    # -- processing in this process ----------------------------------------------------

    def start_worker(
        self,
        *,
        concurrency: int | None = None,
        worker_id: str | None = None,
        groups: list[str] | None = None,
        metrics: Metrics | None = None,
    ) -> WorkerNode:
        """Start an in-process worker (embedded mode, or to help a distributed fleet).

        ``groups``: the model groups it serves (default: all); ``metrics``: where it counts
        (a worker process serves them over HTTP). ``stop()`` the node, or ``close()`` this
        client, to stop it.
        """
        from dispatcher.engine.engine import Engine
        from dispatcher.engine.node import WorkerNode

        engine = Engine(
            config=self.config,
            deployments=self.deployments,
            database=self.database,
            backends=self.backends,
            worker_id=worker_id,
            concurrency=concurrency,
            groups=groups,
            metrics=metrics,
        )
        node = WorkerNode(engine, self.backends.messaging, self.backends.signals)
        node.start()
        self._nodes.append(node)
        return node

    def _ensure_local_worker(self) -> None:
        """Embedded mode: only this process can run jobs, so start a worker here, unless this
        client started one already (a stopped one was stopped on purpose, e.g. by Ctrl-C);
        ``close`` stops it with the others."""
        if not self.embedded or self._nodes:
            return
        self.start_worker()

    def run(
        self,
        source: Source,
        *,
        on_submitted: Callable[[SubmitResult], None] | None = None,
        on_progress: Progress | None = None,
        concurrency: int | None = None,
        **submit_options: Any,
    ) -> BatchInfo:
        """Submit and process a batch in this process, returning when it has ended."""
        node = self.start_worker(concurrency=concurrency)
        try:
            result = self.submit(source, **submit_options)
            if on_submitted is not None:
                on_submitted(result)
            return self.wait(result.batch_id, on_progress=on_progress)
        finally:
            node.stop()


def _not_pruned(info: BatchInfo) -> BatchInfo:
    if info.pruned_at is not None:
        when = datetime.fromtimestamp(info.pruned_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        raise UsageError(
            f"batch {info.id}'s request and response bodies were pruned on {when} (retention): "
            "its results cannot be written nor its requests run again; its status, usage and cost remain"
        )
    return info


def _moment(name: str, value: Moment | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        return parse_time_or_ago(value)
    except ValueError as exc:
        raise UsageError(f"--{name}: {exc}") from None
