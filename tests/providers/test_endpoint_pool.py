"""EndpointPool against a real HTTP server on 127.0.0.1: bodies, compression, many callers."""

from __future__ import annotations

import asyncio
import gzip
import http.server
import threading

import httpx
import pytest

from dispatcher.providers.http import EndpointPool


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so lanes reuse their connections

    seen: list[str] = []

    def do_GET(self):
        self.seen.append(self.path)
        plain = f'{{"path": "{self.path}"}}'.encode()
        body = gzip.compress(plain) if self.path.startswith("/gzip") else plain
        self.send_response(200)
        if self.path.startswith("/gzip"):
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


async def _get(pool: EndpointPool, url: str) -> tuple[int, bytes]:
    status, _headers, body = await pool.send(httpx.Request("GET", url))
    return status, body


def test_plain_and_compressed_bodies(server_url):
    async def main():
        pool = EndpointPool(max_in_flight=4)
        try:
            return [await _get(pool, f"{server_url}{path}") for path in ("/plain", "/gzip")]
        finally:
            await pool.aclose()

    assert asyncio.run(main()) == [(200, b'{"path": "/plain"}'), (200, b'{"path": "/gzip"}')]


def test_more_callers_than_connections_all_get_their_own_answer(server_url):
    async def main():
        pool = EndpointPool(max_in_flight=4)  # 2 lanes of 2 connections, 20 callers
        try:
            return await asyncio.gather(*(_get(pool, f"{server_url}/n{i}") for i in range(20)))
        finally:
            await pool.aclose()

    answers = asyncio.run(main())
    assert answers == [(200, f'{{"path": "/n{i}"}}'.encode()) for i in range(20)]


def test_a_withdrawn_send_permit_sends_nothing(server_url):
    """The engine's last word (send_permit.py): asked synchronously right before the write, so
    a worker paused after its lease check does not send a job taken over meanwhile."""
    from dispatcher.providers.send_permit import SendWithdrawn, send_permit

    _Handler.seen = []
    lease = {"held": True}

    async def main():
        pool = EndpointPool(max_in_flight=2)
        try:
            with send_permit(lambda: lease["held"]):
                assert (await _get(pool, server_url + "/first"))[0] == 200
                lease["held"] = False
                with pytest.raises(SendWithdrawn):
                    await _get(pool, server_url + "/second")
            assert (await _get(pool, server_url + "/outside"))[0] == 200  # no permit: sent
        finally:
            await pool.aclose()

    asyncio.run(main())
    assert _Handler.seen == ["/first", "/outside"]
