"""httpcore on the asyncio network backend, against real servers on 127.0.0.1 (plain HTTP
and TLS), on asyncio's loop and on uvloop: bodies larger than the read buffer, timeouts,
refused connections, and keep-alive connections the server closed while idle."""

from __future__ import annotations

import asyncio
import http.server
import ssl
import subprocess
import threading
import time

import httpcore
import httpx
import pytest
import uvloop

from dispatcher.providers.asyncio_network import READ_BUFFER_HIGH, AsyncioBackend
from dispatcher.providers.http import EndpointPool

BIG = bytes(range(256)) * (4 * READ_BUFFER_HIGH // 256)  # 1 MiB: reading pauses and resumes


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[int] = set()

    def do_GET(self):
        type(self).connections.add(self.client_address[1])
        if self.path == "/slow":
            time.sleep(1.0)
        body = BIG if self.path == "/big" else b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/then-close":  # keep-alive promised, then the server hangs up
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


def _serve(server: http.server.ThreadingHTTPServer):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def server_url():
    _Handler.connections = set()
    server = _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler))
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def tls_server(tmp_path):
    """(URL, client SSL context trusting the server's self-signed certificate)."""
    _Handler.connections = set()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    _serve(server)
    yield f"https://localhost:{server.server_port}", ssl.create_default_context(cafile=str(cert))
    server.shutdown()
    server.server_close()


LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def run(loop_name: str, coroutine):
    loop = LOOPS[loop_name]()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_body_larger_than_the_read_buffer_arrives_whole(server_url, loop_name):
    async def fetch():
        pool = EndpointPool(4)
        try:
            return await pool.send(httpx.Request("GET", f"{server_url}/big"))
        finally:
            await pool.aclose()

    status, _, body = run(loop_name, fetch())
    assert status == 200 and body == BIG


@pytest.mark.parametrize("loop_name", LOOPS)
def test_read_timeout_and_refused_connection_raise_httpx_errors(server_url, loop_name):
    async def slow():
        pool = EndpointPool(4)
        try:
            request = httpx.Request("GET", f"{server_url}/slow",
                                    extensions={"timeout": {"connect": 1, "read": 0.2, "write": 1, "pool": 1}})
            await pool.send(request)
        finally:
            await pool.aclose()

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        run(loop_name, slow())
    assert time.monotonic() - started < 0.9

    async def refused():
        pool = EndpointPool(4)
        try:
            await pool.send(httpx.Request("GET", "http://127.0.0.1:9/"))  # discard port: nobody listens
        finally:
            await pool.aclose()

    with pytest.raises(httpx.ConnectError):
        run(loop_name, refused())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_keepalive_connection_the_server_closed_is_not_reused(server_url, loop_name):
    async def twice():
        pool = EndpointPool(1, connections_per_lane=1)
        try:
            first = await pool.send(httpx.Request("GET", f"{server_url}/then-close"))
            await asyncio.sleep(0.2)  # the server's FIN has arrived
            second = await pool.send(httpx.Request("GET", f"{server_url}/again"))
            return first[0], second[0]
        finally:
            await pool.aclose()

    assert run(loop_name, twice()) == (200, 200)
    assert len(_Handler.connections) == 2


@pytest.mark.parametrize("loop_name", LOOPS)
def test_tls(tls_server, loop_name):
    url, context = tls_server

    async def fetch():
        async with httpcore.AsyncConnectionPool(ssl_context=context, network_backend=AsyncioBackend()) as pool:
            responses = [await pool.request("GET", f"{url}/big") for _ in range(2)]  # the second reuses it
            return [(r.status, r.content) for r in responses]

    assert run(loop_name, fetch()) == [(200, BIG), (200, BIG)]
    assert len(_Handler.connections) == 1
