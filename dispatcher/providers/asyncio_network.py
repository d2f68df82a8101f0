"""httpcore's network layer on plain asyncio (uvloop in workers) instead of anyio.

httpcore's default backend goes through anyio: every read and write opens a cancel scope with
its deadline, every send yields to the loop first, and each request's "did the server close
this idle connection?" check builds anyio's attribute table and polls the socket. At
hundreds of calls per second that was about a quarter of a worker's CPU per job (profile in
docs/benchmarks.md). Here a connection is an ``asyncio.Protocol`` with a receive buffer: a
read waits on one future with one timer for its timeout, a write hands bytes to the
transport, and readability is known from the buffer without a system call.

The contract is httpcore's ``AsyncNetworkBackend``: its timeouts and errors are httpcore's
(``ReadTimeout``, ``ConnectError``...), which httpx maps to its own as with any backend.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import typing

from httpcore import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

# Stop reading from the socket while this much is received and not yet read.
READ_BUFFER_HIGH = 256 * 1024


class _Connection(asyncio.Protocol):
    """What the transport delivered and not yet read, and who waits for more or to write."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.waiter: asyncio.Future | None = None  # a read waiting for data
        self.drain: asyncio.Future | None = None  # a write waiting for the buffer to drain

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_BUFFER_HIGH and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        drain, self.drain = self.drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        if self.drain is None:
            self.drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drain, self.drain = self.drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _expire(future: asyncio.Future, error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


async def _wait(future: asyncio.Future, timeout: float | None, error: Exception) -> None:
    """Await ``future``; after ``timeout`` seconds it fails with ``error`` instead."""
    if timeout is None:
        await future
        return
    timer = asyncio.get_running_loop().call_later(timeout, _expire, future, error)
    try:
        await future
    finally:
        timer.cancel()


class AsyncioStream(AsyncNetworkStream):
    def __init__(self, connection: _Connection):
        self._connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        if not connection.buffer and not connection.eof:
            connection.waiter = asyncio.get_running_loop().create_future()
            try:
                await _wait(connection.waiter, timeout, ReadTimeout("timed out reading the response"))
            finally:
                connection.waiter = None
        buffer = connection.buffer
        if buffer:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
            if connection.reading_paused and len(buffer) <= READ_BUFFER_HIGH // 2:
                connection.reading_paused = False
                connection.transport.resume_reading()
            return data
        if connection.error is not None:
            raise ReadError(str(connection.error) or type(connection.error).__name__)
        return b""  # the server closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        connection = self._connection
        if connection.eof or connection.transport.is_closing():
            raise WriteError("the connection is closed")
        connection.transport.write(buffer)
        if connection.drain is not None:
            await _wait(connection.drain, timeout, WriteTimeout("timed out sending the request"))

    async def aclose(self) -> None:
        transport = self._connection.transport
        if transport is not None:
            transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None,
    ) -> AsyncNetworkStream:
        connection = self._connection
        try:
            transport = await asyncio.get_running_loop().start_tls(
                connection.transport, connection, ssl_context,
                server_hostname=server_hostname, ssl_handshake_timeout=timeout,
            )
        except TimeoutError as exc:
            await self.aclose()
            raise ConnectTimeout("timed out in the TLS handshake") from exc
        except (ssl.SSLError, OSError, ConnectionError) as exc:
            await self.aclose()
            raise ConnectError(str(exc) or type(exc).__name__) from exc
        connection.transport = transport
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        connection = self._connection
        transport = connection.transport
        if info == "is_readable":  # an idle connection with data or EOF: the server closed it
            return bool(connection.buffer) or connection.eof or transport.is_closing()
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


class AsyncioBackend(AsyncNetworkBackend):
    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local_addr = (local_address, 0) if local_address else None
        return await _open(
            lambda factory: loop.create_connection(factory, host, port, local_addr=local_addr),
            f"{host}:{port}", timeout, socket_options,
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await _open(
            lambda factory: loop.create_unix_connection(factory, path), path, timeout, socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _open(connect, target: str, timeout: float | None,
                socket_options: typing.Iterable[typing.Any] | None) -> AsyncNetworkStream:
    """A stream over ``connect(protocol_factory)``, its failures as httpcore's errors."""
    connection = _Connection()
    try:
        async with asyncio.timeout(timeout):
            await connect(lambda: connection)
    except TimeoutError as exc:
        raise ConnectTimeout(f"timed out connecting to {target}") from exc
    except OSError as exc:
        raise ConnectError(str(exc) or type(exc).__name__) from exc
    _apply(connection, socket_options)
    return AsyncioStream(connection)


def _apply(connection: _Connection, socket_options: typing.Iterable[typing.Any] | None) -> None:
    """Set the caller's socket options (asyncio already sets TCP_NODELAY)."""
    sock: socket.socket | None = connection.transport.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
