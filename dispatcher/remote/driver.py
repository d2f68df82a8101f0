"""The provider batch route, run by every worker: form provider batches from held jobs, then
take each through upload -> create -> poll -> import, one step at a time.

Exactly once: each step writes its remote id (file, batch) to SQL before the next step uses
it, and marks the step as started (``uploading``, ``creating``) before the side effect. A
worker that takes over a provider batch left in one of those states first asks the provider
whether the upload or the batch exists (``find_upload``, ``find_created``: by our part id in
the file name or batch metadata) and adopts it, so a SIGKILL at any step neither uploads nor
creates twice nor loses a remote batch. A worker checks its lease before each side effect:
one frozen past ``dead_after`` has had its provider batches taken, and stops.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from sqlalchemy.engine import Connection, Row

from dispatcher.config.schema import ProviderBatchSettings
from dispatcher.deployments import Deployment, Deployments
from dispatcher.engine.db_access import DatabaseAccess
from dispatcher.engine.membership import Membership
from dispatcher.pricing import batch_price_for
from dispatcher.providers.batch_api import batch_api_for
from dispatcher.providers.batch_api.base import BatchApi, RemoteBatch, RemoteStatus
from dispatcher.providers.errors import ProviderError
from dispatcher.remote.forming import form_parts
from dispatcher.remote.input_file import InputFile, build_input
from dispatcher.remote.results import PartContext, Tally, write_refused, write_results, write_unanswered
from dispatcher.store import batches as batch_sql
from dispatcher.store import provider_batches as part_sql
from dispatcher.store.clock import DatabaseClock
from dispatcher.store.tables import PartState

log = logging.getLogger(__name__)

UNANSWERED_PAGE = 5000
IMPORT_WRITERS = 3  # result chunks written at once (the engine has 4 database threads)


# A look that finds nothing to form or take makes the next one wait twice as long, up to this
# many check_intervals (10 s by default): forming or polling a provider batch may then start
# that much later, which its minutes-to-hours turnaround hides; an idle worker's look every
# 2 s was a quarter of its idle SQL.
IDLE_LOOK_STRETCH = 5


class LostPart(Exception):
    """Another worker took this provider batch (this one was judged dead): stop touching it."""


class ProviderBatchDriver:
    """This worker's share of the provider batch route."""

    def __init__(
        self, *, deployments: Deployments, groups: list[str], settings: ProviderBatchSettings,
        db: DatabaseAccess, clock: DatabaseClock, membership: Membership, worker_id: str,
        on_requeued: Callable[[set[str]], None],
    ):
        self._settings = settings
        self._db = db
        self._clock = clock
        self._membership = membership
        self._worker_id = worker_id
        self._on_requeued = on_requeued
        self._deployments = {
            d.id: d for g in groups for d in deployments.group(g) if d.batch_api
        }
        self._by_group = {
            g: [d for d in deployments.group(g) if d.batch_api] for g in groups
        }
        self._apis: dict[str, BatchApi] = {}
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False

    @property
    def active(self) -> bool:
        return bool(self._deployments)

    def _api(self, deployment: Deployment) -> BatchApi:
        api = self._apis.get(deployment.id)
        if api is None:
            api = self._apis[deployment.id] = batch_api_for(deployment)
        return api

    def _limits(self, deployment: Deployment) -> tuple[int, int]:
        api = self._api(deployment)
        return api.max_lines, api.max_bytes

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        every = self._settings.check_interval
        interval = every
        while not self._stopping:
            found = True
            try:
                found = await self.tick()
            except Exception as exc:  # noqa: BLE001 - the route must outlive a bad tick
                log.warning("provider batches: %s", exc)
            idle = not found and not self._tasks
            interval = min(2 * interval, IDLE_LOOK_STRETCH * every) if idle else every
            await asyncio.sleep(interval)

    async def tick(self) -> bool:
        """One look: form provider batches of held jobs, take the ones due a step. True if it
        found either."""
        room = 0 if self._stopping else self._settings.per_worker - len(self._tasks)
        # One read answers both questions; most ticks of most workers find nothing to do.
        to_form, due = await self._db.read(_look, now=self._clock.now(), limit=room,
                                           deployment_ids=list(self._deployments))
        if to_form:
            await form_parts(self._db, self._by_group, self._limits, self._clock.now())
            if room > 0:  # parts formed just now may be due at once
                due = await self._db.read(part_sql.due_parts, now=self._clock.now(), limit=room,
                                          deployment_ids=list(self._deployments))
        if not due:
            return to_form
        parts = await self._db.write(part_sql.take_parts, worker_id=self._worker_id, part_ids=due)
        epoch = self._membership.lease.epoch
        for part in parts:
            task = asyncio.create_task(self._work(part, epoch), name=f"provider-batch-{part.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    async def stop(self, grace: float) -> None:
        """Stop taking provider batches; steps in progress get ``grace`` seconds, then they are
        cancelled (each resumes from SQL in the next worker that takes it)."""
        self._stopping = True
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for api in self._apis.values():
            await api.aclose()

    # -- one provider batch --------------------------------------------------------------

    async def _work(self, part: Row, epoch: int) -> None:
        step = _Steps(self, part, epoch)
        try:
            await step.run()
        except LostPart:
            log.warning("provider batch %s: this worker no longer holds it; leaving it", part.id)
            await step.release()  # fenced: frees it only if nobody else has taken it
        except ProviderError as exc:
            await step.later(f"{type(exc).__name__}: {exc.message}")
        except asyncio.CancelledError:
            await asyncio.shield(step.release())
            raise
        except Exception as exc:  # noqa: BLE001 - retried later, by this worker or another
            log.exception("provider batch %s: step failed", part.id)
            await step.later(f"{type(exc).__name__}: {exc}")
        finally:
            step.close()


class _Steps:
    """The steps of one provider batch under one claim on it."""

    def __init__(self, driver: ProviderBatchDriver, part: Row, epoch: int):
        self.d = driver
        self.part = part
        self.claim = part.claim
        self.epoch = epoch
        self.deployment = driver._deployments[part.deployment_id]
        self.api = driver._api(self.deployment)
        self.input: InputFile | None = None
        self.released = False

    # -- plumbing

    def now(self) -> float:
        return self.d._clock.now()

    async def _update(self, **values) -> None:
        if not await self.d._db.write(part_sql.update_part, part_id=self.part.id, claim=self.claim, **values):
            raise LostPart()
        self.part = await self.d._db.read(part_sql.get_part, part_id=self.part.id)

    async def _may_act(self) -> None:
        """Before any side effect at the provider: is this worker still the owner?"""
        if not await self.d._membership.holds_lease(self.epoch):
            raise LostPart()

    async def release(self, **values) -> None:
        if not self.released:
            self.released = True
            await self.d._db.write(part_sql.release_part, part_id=self.part.id, claim=self.claim, **values)

    async def later(self, problem: str) -> None:
        """A step failed (provider or network): try again after a backoff."""
        polls = (self.part.polls or 0) + 1
        wait = self._backoff(polls)
        log.warning("provider batch %s (%s): %s; trying again in %.0fs", self.part.id, self.part.state, problem, wait)
        await self.release(polls=polls, next_poll_at=self.now() + wait, message=problem[:2000])

    def _backoff(self, doublings: int) -> float:
        """first_poll doubled ``doublings`` times, at most max_poll_interval."""
        settings = self.d._settings
        return min(settings.max_poll_interval, settings.first_poll * 2 ** min(doublings, 20))

    def close(self) -> None:
        if self.input is not None:
            self.input.remove()

    def context(self) -> PartContext:
        part = self.part
        return PartContext(
            part_id=part.id, batch_id=part.batch_id, model_group=part.model_group,
            deployment_id=part.deployment_id, worker_id=self.d._worker_id,
            submitted_at=part.submitted_at or part.created_at, cancel_requested=bool(part.cancel_requested),
            price=batch_price_for(self.deployment),
        )

    async def _write(self, fn, **kwargs) -> Tally:
        tally = await self.d._db.write(fn, context=self.context(), now=self.now(), postgres=self.d._db.postgres, **kwargs)
        if tally.requeued_groups:
            self.d._on_requeued(tally.requeued_groups)
        return tally

    async def _build_input(self) -> InputFile:
        if self.input is None:
            self.input = await self.d._db.run(build_input, self.d._db.database, self.part.id, self.api, self.deployment)
            if self.input.refused:
                await self._write(write_refused, refused=self.input.refused)
        return self.input

    # -- the state machine

    async def run(self) -> None:
        while True:
            state = self.part.state
            if state in PartState.DONE:
                return await self.release()
            if self.part.cancel_requested and state in (PartState.NEW, PartState.UPLOADING, PartState.UPLOADED):
                await self._drop()
            elif state in (PartState.NEW, PartState.UPLOADING) and not self._has_upload_step():
                await self._update(state=PartState.UPLOADED)
            elif state == PartState.NEW:
                await self._upload()
            elif state == PartState.UPLOADING:
                await self._resume_upload()
            elif state == PartState.UPLOADED:
                await self._create()
            elif state == PartState.CREATING:
                await self._resume_create()
            elif state == PartState.SUBMITTED:
                if self.part.next_poll_at > self.now():  # just created: first_poll from now
                    return await self.release()
                if not await self._poll():
                    return
            elif state == PartState.ENDED:
                await self._import()
            else:
                raise RuntimeError(f"unknown provider batch state {state!r}")

    def _has_upload_step(self) -> bool:
        return self.api.uploads

    async def _upload(self) -> None:
        built = await self._build_input()
        if built.lines == 0:
            return await self._update(state=PartState.IMPORTED, imported_at=self.now(), lines=0)
        await self._update(state=PartState.UPLOADING, upload_started_at=self.now(), lines=built.lines,
                           bytes=built.bytes)
        await self._send_upload(built)

    async def _send_upload(self, built: InputFile) -> None:
        await self._may_act()
        try:
            file_id = await self.api.upload(self.part.id, built.path)
        except ProviderError as exc:
            if exc.retryable:
                raise
            return await self._give_up(exc)
        try:
            await self._update(state=PartState.UPLOADED, input_file_id=file_id)
        except LostPart:
            await self.api.delete_file(file_id)  # the new owner uploads or adopts its own
            raise

    async def _resume_upload(self) -> None:
        await self._may_act()
        found = await self.api.find_upload(self.part.id, self.part.upload_started_at or self.part.created_at)
        if found is not None:
            log.info("provider batch %s: adopted upload %s made before a restart", self.part.id, found)
            return await self._update(state=PartState.UPLOADED, input_file_id=found)
        built = await self._build_input()
        await self._send_upload(built)

    async def _create(self) -> None:
        built = await self._build_input() if not self._has_upload_step() else None
        if built is not None and built.lines == 0:
            return await self._update(state=PartState.IMPORTED, imported_at=self.now(), lines=0)
        values = {"state": PartState.CREATING, "create_started_at": self.now()}
        if built is not None:
            values.update(lines=built.lines, bytes=built.bytes)
        await self._update(**values)
        await self._send_create()

    async def _send_create(self) -> None:
        built = await self._build_input() if not self._has_upload_step() else None
        await self._may_act()
        try:
            remote = await self.api.create(self.part.id, self.part.input_file_id, built.path if built else None,
                                           self.part.endpoint)
        except ProviderError as exc:
            if exc.retryable:
                raise
            return await self._give_up(exc)
        try:
            await self._submitted(remote)
        except LostPart:
            current = await self.d._db.read(part_sql.get_part, part_id=self.part.id)
            if current is not None and current.remote_id not in (None, remote.id):
                log.warning("provider batch %s: cancelling %s, a second batch made while frozen", self.part.id, remote.id)
                await self.api.cancel(remote.id)
            raise

    async def _submitted(self, remote: RemoteBatch) -> None:
        now = self.now()
        await self._update(state=PartState.SUBMITTED, remote_id=remote.id, provider_status=remote.provider_status,
                           submitted_at=now, polls=0, message=None, next_poll_at=now + self.d._settings.first_poll)
        log.info("provider batch %s: created %s (%d lines) at %s", self.part.id, remote.id, self.part.lines,
                 self.deployment.id)

    async def _resume_create(self) -> None:
        await self._may_act()
        known = await self.d._db.read(part_sql.known_remote_ids, deployment_id=self.part.deployment_id)
        found = await self.api.find_created(self.part.id, self.part.input_file_id, self.part.lines,
                                            self.part.create_started_at or self.part.created_at, known)
        if found is not None:
            log.info("provider batch %s: adopted %s created before a restart", self.part.id, found)
            return await self._submitted(RemoteBatch(found, RemoteStatus.RUNNING, "adopted"))
        if self.part.cancel_requested:
            return await self._drop()
        await self._send_create()

    async def _give_up(self, exc: ProviderError) -> None:
        """The provider refused the upload or the batch (an error no retry mends: a bad key, a
        file it will not take): nothing was made there, so the lines go to the realtime route
        (while their window is open), where each fails or succeeds on its own."""
        log.warning("provider batch %s: the provider refused it (%s: %s); its requests go realtime",
                    self.part.id, type(exc).__name__, exc.message)
        await self._update(state=PartState.ENDED, ended_at=self.now(),
                           message=f"{type(exc).__name__}: {exc.message}"[:2000])

    async def _drop(self) -> None:
        """Cancelled before the provider had the batch: its jobs end cancelled."""
        file_id = self.part.input_file_id
        if file_id is None and self.part.state == PartState.UPLOADING:  # an upload whose answer was lost
            await self._may_act()
            file_id = await self.api.find_upload(self.part.id, self.part.upload_started_at or self.part.created_at)
        if file_id:
            await self.api.delete_file(file_id)
        await self._update(state=PartState.DROPPED)
        await self.d._db.write(_cancel_jobs, part_id=self.part.id, batch_id=self.part.batch_id, now=self.now())

    async def _poll(self) -> bool:
        """One look at the remote batch; False when it is still running (released until the
        next poll)."""
        await self._may_act()
        if self.part.cancel_requested and not self.part.cancel_sent:
            await self.api.cancel(self.part.remote_id)
            await self._update(cancel_sent=True)
        remote = await self.api.retrieve(self.part.remote_id)
        if remote.status == RemoteStatus.RUNNING:
            polls = (self.part.polls or 0) + 1
            wait = self._backoff(polls - 1)
            await self.release(polls=polls, provider_status=remote.provider_status,
                               next_poll_at=self.now() + wait, message=None)
            return False
        await self._update(state=PartState.ENDED, ended_at=self.now(), provider_status=remote.provider_status,
                           output_ref=remote.output_ref, error_ref=remote.error_ref,
                           message=remote.message if remote.status == RemoteStatus.FAILED else None)
        return True

    async def _import(self) -> None:
        part = self.part
        tally = Tally()
        if part.output_ref or part.error_ref:
            remote = RemoteBatch(part.remote_id, RemoteStatus.ENDED, part.provider_status or "",
                                 output_ref=part.output_ref, error_ref=part.error_ref)
            # Chunks are written in transactions of their own, a few at once (they touch
            # different jobs; PostgreSQL runs them on several cores), while the next is read.
            chunk: list = []
            pending: set[asyncio.Future] = set()
            try:
                async for line in self.api.results(remote):
                    chunk.append(line)
                    if len(chunk) >= self.d._settings.import_chunk:
                        if len(pending) >= IMPORT_WRITERS:
                            tally.add(await _first_done(pending))
                        pending.add(asyncio.ensure_future(self._write(write_results, lines=chunk)))
                        chunk = []
                if chunk:
                    pending.add(asyncio.ensure_future(self._write(write_results, lines=chunk)))
                while pending:
                    tally.add(await _first_done(pending))
            finally:  # a failed read or write: let the others end (the next import redoes none of them)
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
        reason = (f"the provider batch failed: {part.message}" if part.message
                  else "the provider batch returned no result for this request")
        while True:
            left = await self.d._db.read(part_sql.unanswered_jobs, part_id=part.id, limit=UNANSWERED_PAGE)
            if not left:
                break
            tally.add(await self._write(write_unanswered, job_ids=left, reason=reason))
        await self._update(state=PartState.IMPORTED, imported_at=self.now())
        log.info("provider batch %s imported: %d succeeded, %d failed, %d cancelled, %d back to realtime",
                 part.id, tally.succeeded, tally.failed, tally.cancelled, tally.requeued)


def _look(connection: Connection, *, now: float, limit: int, deployment_ids: list[str]) -> tuple[bool, list[str]]:
    """(are there held jobs to form provider batches of, the provider batches due a step)."""
    return (
        bool(part_sql.batches_to_form(connection, now, limit=1)),
        part_sql.due_parts(connection, now, limit, deployment_ids),
    )


async def _first_done(pending: set[asyncio.Future]):
    """Wait for one of ``pending`` to finish; remove it and return its result (or raise)."""
    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    future = done.pop()
    pending.discard(future)
    return future.result()


def _cancel_jobs(connection, *, part_id: str, batch_id: str, now: float) -> None:
    cancelled = part_sql.cancel_part_jobs(connection, [part_id], now)
    if cancelled:
        batch_sql.add_counters(connection, {batch_id: {"cancelled": cancelled}})
        batch_sql.finish_if_done(connection, [batch_id], now)

