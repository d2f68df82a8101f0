"""The engine's way to the database: blocking SQL on a few threads, off the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools

from dispatcher.store.database import Database

DATABASE_THREADS = 4


class DatabaseAccess:
    def __init__(self, database: Database):
        self.database = database
        self.postgres = not database.is_sqlite
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=DATABASE_THREADS, thread_name_prefix="llmd-db"
        )

    async def run(self, fn, *args, **kwargs):
        """Any blocking function, on a database thread."""
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, functools.partial(fn, *args, **kwargs)
        )

    async def write(self, fn, **kwargs):
        """``fn(connection, **kwargs)`` in a write transaction."""
        return await self.run(self._write_tx, fn, **kwargs)

    async def read(self, fn, **kwargs):
        """``fn(connection, **kwargs)`` in a read transaction."""
        return await self.run(self._read_tx, fn, **kwargs)

    def _write_tx(self, fn, **kwargs):
        with self.database.write() as connection:
            return fn(connection, **kwargs)

    def _read_tx(self, fn, **kwargs):
        with self.database.read() as connection:
            return fn(connection, **kwargs)

    def close(self) -> None:
        self._threads.shutdown(wait=False)
