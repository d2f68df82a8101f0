"""A TCP proxy for fault injection: cut every link, or lose one reply after the server acted.

Usage::

    proxy = FaultProxy(5432)                    # forwards 127.0.0.1:proxy.port -> 127.0.0.1:5432
    url = proxy.rewrite(postgres_url)           # the same URL, through the proxy
    proxy.lose_reply(b"COMMIT", after=b"FOR UPDATE SKIP LOCKED")
    ...                                         # the next COMMIT sent on a connection that sent
                                                # a claim reaches PostgreSQL and is executed, but
                                                # its reply is swallowed and the connection closed:
                                                # the server committed, the client saw it die.
    proxy.faults                                # how many replies were lost so far
    proxy.cut(); proxy.restore()                # drop every link and refuse new ones; allow again
    proxy.close()

Patterns are matched in the raw bytes a client sends (for PostgreSQL: the SQL text of simple
queries such as ``COMMIT`` and of statements being parsed). Threads, one pair per link.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from sqlalchemy.engine import make_url

REPLY_WAIT_S = 5.0  # longest wait for the reply that is to be lost


@dataclass
class _Rule:
    pattern: bytes
    after: bytes | None
    times: int


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client = client
        self.upstream = upstream
        self.tail = b""  # the last bytes seen, so a pattern split across reads still matches
        self.primed = False  # ``after`` was seen on this link
        self.losing = threading.Event()  # the next reply from the server is to be lost

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``target_host:target_port``, with injectable faults."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self._target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self.faults = 0
        self._rule: _Rule | None = None
        self._up = True
        self._closed = False
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="fault-proxy").start()

    # -- the API -------------------------------------------------------------------------

    def rewrite(self, url: str) -> str:
        """``url`` (a database or Redis URL) pointing at this proxy instead of its target."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def lose_reply(self, pattern: bytes, *, after: bytes | None = None, times: int = 1) -> None:
        """Lose the server's reply to the next ``times`` client messages containing ``pattern``
        (only on links that sent ``after`` first, when given): the message is forwarded, the
        reply swallowed, then the link is closed."""
        with self._lock:
            self._rule = _Rule(pattern, after, times)

    def cut(self) -> None:
        """Drop every link and refuse new ones until ``restore``."""
        self._up = False
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()

    def restore(self) -> None:
        self._up = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- forwarding ----------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            link = _Link(client, upstream)
            with self._lock:
                self._links.add(link)
            threading.Thread(target=self._client_to_server, args=(link,), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(link,), daemon=True).start()

    def _client_to_server(self, link: _Link) -> None:
        try:
            while True:
                data = link.client.recv(65536)
                if not data:
                    break
                if self._triggers(link, data):
                    link.losing.set()  # before forwarding: the reply may come back at once
                    link.upstream.sendall(data)
                    return
                link.upstream.sendall(data)
        except OSError:
            pass
        finally:
            if not link.losing.is_set():
                self._drop(link)

    def _server_to_client(self, link: _Link) -> None:
        try:
            while True:
                if link.losing.is_set():
                    link.upstream.settimeout(REPLY_WAIT_S)
                data = link.upstream.recv(65536)
                if not data or link.losing.is_set():
                    break  # a reply to lose: read (so the server acted), never forwarded
                link.client.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(link)

    def _drop(self, link: _Link) -> None:
        link.close()
        with self._lock:
            self._links.discard(link)

    def _triggers(self, link: _Link, data: bytes) -> bool:
        with self._lock:
            rule = self._rule
            if rule is None or rule.times <= 0:
                return False
            window = link.tail + data
            start = 0
            if rule.after is not None and not link.primed:
                at = window.find(rule.after)
                if at >= 0:
                    link.primed = True
                    start = at + len(rule.after)
            keep = max(len(rule.pattern), len(rule.after or b"")) - 1
            link.tail = window[len(window) - keep:] if keep > 0 else b""
            if (rule.after is not None and not link.primed) or window.find(rule.pattern, start) < 0:
                return False
            rule.times -= 1
            self.faults += 1
            return True
