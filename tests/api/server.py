"""``llm-dispatch serve`` as a subprocess on 127.0.0.1, for tests that drive it with the openai SDK."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import cli_env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ApiServer:
    """``llm-dispatch -c CONFIG serve --port P`` in the background; ready once /health answers."""

    def __init__(self, config: Path, *extra: str, env: dict | None = None, timeout: float = 60):
        self.port = free_port()
        self.log_path = config.parent / f"serve-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "-c", str(config), "serve", "--port", str(self.port), *extra],
            stdout=self._log, stderr=subprocess.STDOUT, env=env or cli_env(),
        )
        self._wait_ready(timeout)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What the SDK's base_url is set to."""
        return f"{self.root_url}/v1"

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.root_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"serve did not answer /health within {timeout:g}s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> "ApiServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
