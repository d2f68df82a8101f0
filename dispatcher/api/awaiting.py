"""The chat route's desk: stores completions many per transaction, and hands each route its
result row when its completion has ended.

Storing: requests arriving while a transaction runs wait for the next one, which takes them
all (group commit), so SQL costs one transaction per burst instead of one per request, and a
lone request is stored at once. Results: the worker announces each awaited batch it finished
(``FINISHED`` in dispatcher/signals.py); the desk reads the rows announced together in one
query and resolves the waiting routes' futures. A lost announcement only delays: the route
also looks at SQL now and then.
"""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from dispatcher.client.awaited import AwaitedRequest
from dispatcher.client.client import Client
from dispatcher.signals import FINISHED

log = logging.getLogger(__name__)


class CompletionDesk:
    """One per app and event loop (``CompletionDesk.of(app)``)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self._pending: list[tuple[AwaitedRequest, asyncio.Future]] = []
        self._storing = False
        self._waiters: dict[str, asyncio.Future] = {}
        self._announced: list[str] = []
        self._reading = False
        client.backends.signals.subscribe(FINISHED, self._on_finished)

    @classmethod
    def of(cls, app: FastAPI) -> "CompletionDesk":
        desk = getattr(app.state, "completion_desk", None)
        if desk is None:
            desk = app.state.completion_desk = cls(app.state.client)
        return desk

    def listen(self, batch_id: str) -> asyncio.Future:
        """The future of ``batch_id``'s ended job row, resolved when the end is announced; ask
        before storing it, so no announcement is missed. ``forget`` it once done."""
        future = self._waiters[batch_id] = self._loop.create_future()
        return future

    def forget(self, batch_id: str) -> None:
        self._waiters.pop(batch_id, None)

    async def store(self, request: AwaitedRequest) -> None:
        """Store ``request`` (with whatever else arrives meanwhile) and wake workers."""
        stored = self._loop.create_future()
        self._pending.append((request, stored))
        if not self._storing:
            self._storing = True
            asyncio.create_task(self._store_pending())
        await stored

    async def _store_pending(self) -> None:
        try:
            while self._pending:
                taken, self._pending = self._pending, []
                try:
                    await run_in_threadpool(self._client.store_completions, [r for r, _ in taken])
                except Exception as exc:  # noqa: BLE001 - each waiting route raises it
                    for _, stored in taken:
                        if not stored.done():
                            stored.set_exception(exc)
                else:
                    for _, stored in taken:
                        if not stored.done():
                            stored.set_result(None)
        finally:
            self._storing = False

    def _on_finished(self, batch_ids: list[str]) -> None:
        """On the signal listener's thread: hand over to the loop only what concerns us (every
        API process hears every announcement of the fleet)."""
        ours = [batch_id for batch_id in batch_ids if batch_id in self._waiters]
        if ours:
            try:
                self._loop.call_soon_threadsafe(self._wake, ours)
            except RuntimeError:  # the loop has closed: the app is shutting down
                pass

    def _wake(self, batch_ids: list[str]) -> None:
        self._announced.extend(batch_ids)
        if not self._reading:
            self._reading = True
            asyncio.create_task(self._read_announced())

    async def _read_announced(self) -> None:
        """Read the announced rows, all those announced meanwhile in one query."""
        try:
            while self._announced:
                taken, self._announced = self._announced, []
                try:
                    rows: dict[str, sa.Row] = await run_in_threadpool(self._client.completion_results, taken)
                except Exception as exc:  # noqa: BLE001 - the routes' own looks at SQL cover it
                    log.warning("could not read %d finished completions (%s); their requests look again", len(taken), exc)
                    continue
                for batch_id, row in rows.items():
                    future = self._waiters.get(batch_id)
                    if future is not None and not future.done():
                        future.set_result(row)
        finally:
            self._reading = False
