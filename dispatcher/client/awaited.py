"""Awaited requests: single completions a caller waits for (``POST /v1/chat/completions``,
``Client.complete``), stored as one-line batches of kind ``completion``.

They take the same queue as batches (claimed by priority, rate-limited, retried, billed), but
not the batch path: no spooling, no storing lease, no chunks. Many are stored in one
transaction (``store_awaited``: the caller gathers those that arrive together), their job
is marked ``awaited`` so the worker writes its result at once and announces it
(dispatcher/signals.py), and workers are woken by an instant signal.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import sqlalchemy as sa

from dispatcher.client.export import FAILED_STATUSES, ROW_COLUMNS
from dispatcher.client.submit import new_batch_id
from dispatcher.config.schema import DispatcherSettings
from dispatcher.durations import parse_duration
from dispatcher.errors import DispatcherError, InputError
from dispatcher.intake.validate import JobSpec, LineValidator
from dispatcher.store import jobs as job_sql
from dispatcher.store.database import Database, database_now
from dispatcher.pricing import price_for
from dispatcher.signals import FINISHED, WAKE
from dispatcher.store.tables import BatchStatus, JobStatus, batches, jobs

if TYPE_CHECKING:  # pragma: no cover
    from dispatcher.backends import Backends
    from dispatcher.deployments import Deployments
    from dispatcher.messaging import Messaging

AWAITED_NAME = "chat.completions"
AWAITED_KIND = "completion"
CUSTOM_ID = "completion"


class CompletionTimeout(DispatcherError, TimeoutError):
    """``complete`` got no answer in time; the request stays queued and its result retrievable."""

    exit_code = 1


class CompletionFailed(DispatcherError):
    """A single completion ended without a result; ``error`` is its OpenAI error-file line."""

    exit_code = 1

    def __init__(self, batch_id: str, error: dict[str, Any] | None):
        self.batch_id = batch_id
        self.error = error or {}
        response = self.error.get("response") or {}
        detail = (self.error.get("error") or {}).get("message")
        if detail is None and response:
            body = response.get("body")
            detail = body.get("error", {}).get("message") if isinstance(body, dict) else str(body)
            detail = f"HTTP {response.get('status_code')}: {detail}"
        super().__init__(f"the completion failed: {detail or 'unknown error'} (batch {batch_id})")


@dataclass(frozen=True)
class AwaitedRequest:
    """A validated completion request, ready to store (its batch id is known beforehand, so
    a waiter can listen for it before it is stored)."""

    spec: JobSpec
    priority: int
    owner: str | None
    max_cost: float | None
    cache_mode: int
    name: str = AWAITED_NAME
    batch_id: str = field(default_factory=new_batch_id)


def prepare_awaited(
    body: dict[str, Any], *, groups: list[str], settings: DispatcherSettings, priority: int,
    owner: str | None = None, max_cost: float | None = None, name: str = AWAITED_NAME,
    request_checks: Mapping[str, Callable[[dict], str | None]] | None = None,
) -> AwaitedRequest:
    """Validate a chat-completions body (with its ``model``) as a batch line would be;
    raises InputError naming the problem."""
    validator = LineValidator(
        known_groups=groups, default_group=None, default_max_tokens=settings.default_max_tokens,
        request_checks=request_checks,
    )
    line = {"custom_id": CUSTOM_ID, "method": "POST", "url": "/v1/chat/completions", "body": body}
    spec = validator.validate(1, line)
    if not isinstance(spec, JobSpec):
        raise InputError(spec.message, [spec])
    return AwaitedRequest(
        spec=spec, priority=priority, owner=owner, max_cost=max_cost, name=name,
        cache_mode=1 if settings.cache.enabled else 0,
    )


def store_awaited(database: Database, requests: list[AwaitedRequest], settings: DispatcherSettings) -> None:
    """Store these requests in one transaction, each a one-line batch ready to be claimed."""
    if not requests:
        return
    window = settings.completion_window
    window_s = parse_duration(window)
    with database.write() as connection:
        # Workers compare times with the database's clock: write on it.
        now = float(connection.execute(sa.select(database_now(connection))).scalar_one())
        starts = _level_starts(connection, settings.fair_share, now,
                               {(r.spec.model_group, r.priority) for r in requests})
        connection.execute(batches.insert(), [_batch_row(r, now, window, window_s) for r in requests])
        connection.execute(
            jobs.insert(),
            [_job_row(r, now, window_s, starts[(r.spec.model_group, r.priority)]) for r in requests],
        )


def _level_starts(connection, fair_share: bool, now: float, levels: set[tuple[str, int]]) -> dict:
    """Where a new batch joins each (group, priority) level (scheduling/fair.py): a one-line
    batch takes its first fair position, as ``submit`` would give it."""
    read: Callable[..., float] = (
        (lambda group, priority: job_sql.fair_frontier(connection, group, priority, now)) if fair_share
        else (lambda group, priority: job_sql.queue_end(connection, group, priority))
    )
    return {level: read(*level) for level in levels}


def _batch_row(request: AwaitedRequest, now: float, window: str, window_s: float) -> dict[str, Any]:
    return dict(
        id=request.batch_id, name=request.name, kind=AWAITED_KIND, status=BatchStatus.IN_PROGRESS,
        model=request.spec.model_group, priority=request.priority, weight=1.0,
        completion_window=window, created_at=now, expires_at=now + window_s,
        max_cost=request.max_cost, cache_mode=request.cache_mode, owner=request.owner, total=1,
    )


def _job_row(request: AwaitedRequest, now: float, window_s: float, fair_key: float) -> dict[str, Any]:
    spec = request.spec
    return dict(
        batch_id=request.batch_id, seq=0, line_no=1, custom_id=CUSTOM_ID, model_group=spec.model_group,
        priority=spec.priority if spec.priority is not None else request.priority, fair_key=fair_key,
        body=spec.body, est_prompt_tokens=spec.est_prompt_tokens,
        est_completion_tokens=spec.est_completion_tokens, status=JobStatus.QUEUED, claim=0,
        attempts=0, retries=0, not_before=0.0, expires_at=now + window_s, cache_mode=request.cache_mode,
        created_at=now, awaited=True,
    )


ENDED = (JobStatus.SUCCEEDED, *FAILED_STATUSES)


def awaited_results(database: Database, batch_ids: list[str]) -> dict[str, sa.Row]:
    """The job rows of these awaited requests that have ended, by batch id, in one query, with
    the columns of ``client/export.py``'s output and error lines."""
    if not batch_ids:
        return {}
    with database.read() as connection:
        rows = connection.execute(
            sa.select(jobs.c.batch_id, *ROW_COLUMNS)
            .where(jobs.c.batch_id.in_(batch_ids), jobs.c.status.in_(ENDED))
        ).all()
    return {row.batch_id: row for row in rows}



class AwaitedMethods:
    """``Client`` methods for awaited requests (the HTTP API's chat completions); a mixin: the
    client provides these attributes."""

    database: Database
    deployments: "Deployments"
    settings: DispatcherSettings
    backends: "Backends"
    messaging: "Messaging"
    request_checks: Mapping[str, Callable[[dict], str | None]]

    def prepare_completion(
        self, body: dict[str, Any], *, priority: int, owner: str | None = None,
        max_cost: float | None = None,
    ) -> AwaitedRequest:
        """A chat-completions body (naming its model group) checked and ready to store;
        raises InputError naming the problem. The caller applies its key's limits."""
        return prepare_awaited(body, groups=self.deployments.groups, settings=self.settings,
                               priority=priority, owner=owner, max_cost=max_cost,
                               request_checks=self.request_checks)

    def store_completions(self, requests: list[AwaitedRequest]) -> None:
        """Store these requests in one transaction and wake workers at once."""
        store_awaited(self.database, requests, self.settings)
        groups = sorted({request.spec.model_group for request in requests})
        self.backends.signals.publish(WAKE, groups)
        self.messaging.notify_quietly(groups)  # the slower path, should the signal be lost

    def await_completion(self, request: AwaitedRequest, *, timeout: float | None,
                         poll_interval: float) -> sa.Row:
        """Store ``request`` and wait for its ended job row; CompletionTimeout after ``timeout``
        seconds (the request keeps its place in the queue)."""
        ended = threading.Event()

        def on_finished(batch_ids: list[str]) -> None:
            if request.batch_id in batch_ids:
                ended.set()

        self.backends.signals.subscribe(FINISHED, on_finished)
        try:
            self.store_completions([request])
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                ended.wait(poll_interval if deadline is None
                           else max(0.0, min(poll_interval, deadline - time.monotonic())))
                row = self.completion_results([request.batch_id]).get(request.batch_id)
                if row is not None:
                    return row
                if deadline is not None and time.monotonic() >= deadline:
                    raise CompletionTimeout(
                        f"no answer within {timeout:g}s; the request keeps its place in the queue "
                        f"(batch {request.batch_id})"
                    )
        finally:
            self.backends.signals.unsubscribe(FINISHED, on_finished)

    def completion_estimate(self, request: AwaitedRequest) -> float | None:
        """The least ``request`` can cost: its prompt estimate and max_tokens at the cheapest
        known price of its group (None: no price known)."""
        spec = request.spec
        costs = [
            price.input_per_token * spec.est_prompt_tokens + price.output_per_token * spec.est_completion_tokens
            for deployment in self.deployments.by_group.get(spec.model_group, [])
            if (price := price_for(deployment)) is not None
        ]
        return min(costs) if costs else None

    def completion_results(self, batch_ids: list[str]) -> dict[str, sa.Row]:
        """The ended job rows of these awaited requests, by batch id (those still running are
        missing)."""
        return awaited_results(self.database, batch_ids)
