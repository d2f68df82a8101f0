"""``llm-dispatch serve`` as a subprocess on 127.0.0.1, for tests that drive it with the openai SDK."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from tests.helpers.cli_process import CliProcess


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ApiServer(CliProcess):
    """``llm-dispatch -c CONFIG serve --port P`` in the background; ready once /health answers."""

    def __init__(self, config: Path, *extra: str, env: dict | None = None, timeout: float = 60):
        self.port = free_port()
        super().__init__(config, ["serve", "--port", str(self.port), *extra], f"serve-{self.port}.log", env)
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
