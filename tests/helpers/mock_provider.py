"""The HTTP mock provider as a subprocess on a free port, for tests."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx


class MockProvider:
    """``python -m dispatcher.mockserver`` with options given as keyword arguments.

    ``MockProvider(latency_ms=200, rpm=600, window_s=10)`` maps to ``--latency-ms 200 ...``.
    """

    def __init__(self, **options: Any):
        self.options = options
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="llmd-mock-")

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What a config's api_base should be."""
        return f"{self.root_url}/v1"

    def start(self, timeout: float = 15.0) -> "MockProvider":
        folder = Path(self._folder.name)
        port_file = folder / "port"
        log_path = folder / "stderr.log"
        command = [sys.executable, "-m", "dispatcher.mockserver", "--port", "0", "--port-file", str(port_file)]
        for key, value in self.options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                command.append(flag)
            elif value not in (None, False):
                command += [flag, str(value)]
        self._log = log_path.open("wb")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"mock provider exited: {log_path.read_text(errors='replace')}")
            if port_file.exists():
                self.port = int(port_file.read_text())
                try:
                    if httpx.get(f"{self.root_url}/health", timeout=1).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mock provider did not start: {log_path.read_text(errors='replace')}")
            time.sleep(0.05)

    def stats(self, detail: bool = False) -> dict:
        params = {"detail": "1"} if detail else None
        return httpx.get(f"{self.root_url}/mock/stats", params=params, timeout=10).json()

    def reset(self) -> None:
        httpx.post(f"{self.root_url}/mock/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None:
            self._log.close()
        self._process = None
        self._folder.cleanup()

    def __enter__(self) -> "MockProvider":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
