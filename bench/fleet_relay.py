"""A TCP relay that makes this machine's services reachable from the fleet's namespaces.

    python -m bench.fleet_relay --netns NAME --listen 10.77.0.1 [--delay-ms 1] \\
        6379=127.0.0.1:6379 5432=127.0.0.1:5432 8080=127.0.0.1:PORT

It listens inside the hub namespace (where the hosts' links meet on a bridge) and connects out
from the namespace it was started in, so Redis, PostgreSQL and the mock provider keep
listening on 127.0.0.1 and nothing on the machine is reconfigured. ``--delay-ms`` holds every
chunk that long in each direction, in order: a link's one-way latency (the kernel here has no
netem). It exits when its parent does, so a crashed benchmark leaves no relay behind.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import socket
from pathlib import Path

CLONE_NEWNET = 0x40000000
CHUNK = 65536


def enter_netns(path: str) -> None:
    """Move this thread into the network namespace at ``path`` (setns(2); os.setns is 3.12+)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path}) failed")
    finally:
        os.close(fd)


def listeners_in(netns: str, address: str, ports: list[int]) -> list[socket.socket]:
    """Listening sockets bound in ``netns``; the caller is back in its own namespace after."""
    home_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        enter_netns(f"/var/run/netns/{netns}")
        sockets = []
        for port in ports:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((address, port))
            listener.listen(256)
            listener.setblocking(False)
            sockets.append(listener)
    finally:
        enter_netns(f"/proc/self/fd/{home_fd}")
        os.close(home_fd)
    return sockets


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy one direction; with a delay, each chunk leaves ``delay_s`` after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                return
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(CHUNK):
            if delay_s:
                queue.put_nowait((loop.time() + delay_s, data))
            else:
                writer.write(data)
                await writer.drain()
    finally:
        queue.put_nowait((0.0, b""))
        await sender
        if writer.can_write_eof():
            writer.write_eof()


async def relay(target: tuple[str, int], delay_s: float,
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection(*target)
    except OSError:
        writer.close()
        return
    for sock in (writer.get_extra_info("socket"), up_writer.get_extra_info("socket")):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    directions = [asyncio.create_task(pipe(reader, up_writer, delay_s)),
                  asyncio.create_task(pipe(up_reader, writer, delay_s))]
    # Both ends closing ends the link, and so does a reset on either side (then both close).
    done, pending = await asyncio.wait(directions, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.exception()
    writer.close()
    up_writer.close()
    await asyncio.gather(*pending, return_exceptions=True)


async def serve(listeners: list[socket.socket], targets: list[tuple[str, int]], delay_s: float,
                ready_file: Path | None) -> None:
    parent = os.getppid()
    servers = [
        await asyncio.start_server(lambda r, w, t=target: relay(t, delay_s, r, w), sock=listener)
        for listener, target in zip(listeners, targets)
    ]
    if ready_file:
        ready_file.write_text("ready\n")
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--netns", required=True, help="the namespace to listen in (ip netns name)")
    parser.add_argument("--listen", required=True, help="the address to listen on there")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay added to every chunk")
    parser.add_argument("--ready-file", type=Path, help="written once every port listens")
    parser.add_argument("routes", nargs="+", metavar="PORT=HOST:PORT")
    args = parser.parse_args()
    ports, targets = [], []
    for route in args.routes:
        port, target = route.split("=", 1)
        host, target_port = target.rsplit(":", 1)
        ports.append(int(port))
        targets.append((host, int(target_port)))
    listeners = listeners_in(args.netns, args.listen, ports)
    asyncio.run(serve(listeners, targets, args.delay_ms / 1000, args.ready_file))


if __name__ == "__main__":
    main()
