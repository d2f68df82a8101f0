"""The HTTP mock provider (``python -m dispatcher.mockserver``) as a subprocess, for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


class MockProvider:
    """A mock provider process on a free port, with options given as keyword arguments.

    ``MockProvider(latency_ms=200, rpm=600, window_s=10)`` runs it with
    ``--latency-ms 200 --rpm 600 --window-s 10``; ``True`` gives a bare flag (``verbose=True``),
    ``None`` and ``False`` leave the option out. Use it as a context manager, or call
    ``start()`` and ``stop()``.
    """

    def __init__(self, **options: Any):
        self.options = options
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._output: Any = None

    @property
    def root_url(self) -> str:
        """The server itself: ``/health``, ``/mock/stats`` live here."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What a config's api_base would be."""
        return f"{self.root_url}/v1"

    def command(self, port_file: Path) -> list[str]:
        command = [sys.executable, "-m", "dispatcher.mockserver", "--port", "0", "--port-file", str(port_file)]
        for key, value in self.options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                command.append(flag)
            elif value is not None and value is not False:
                command += [flag, str(value)]
        return command

    def start(self, timeout: float = 15.0) -> "MockProvider":
        """Start the process; return once it listens and ``/health`` answers."""
        if self._process is not None:
            raise RuntimeError("mock provider already started")
        self._folder = tempfile.TemporaryDirectory(prefix="llmd-mock-")
        folder = Path(self._folder.name)
        port_file = folder / "port"
        output_path = folder / "output.log"
        # A file, not a pipe: nobody reads the output while it runs, and a full pipe would
        # block a --verbose server.
        self._output = output_path.open("wb")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            self.command(port_file), stdout=self._output, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + timeout
        problem = "did not start"
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                problem = f"exited with code {code}"
                break
            if port_file.exists():
                self.port = int(port_file.read_text())
                try:
                    if httpx.get(f"{self.root_url}/health", timeout=1).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.02)
        else:
            problem = f"did not answer /health within {timeout:g}s"
        output = output_path.read_bytes().decode(errors="replace")
        self.stop()
        raise RuntimeError(f"mock provider {problem}: {' '.join(self.command(port_file))}\n{output}")

    def stats(self, detail: bool = False) -> dict[str, Any]:
        """``GET /mock/stats`` (``detail`` adds per-prompt counts and admission times)."""
        params = {"detail": "1"} if detail else None
        response = httpx.get(f"{self.root_url}/mock/stats", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """``POST /mock/reset``: clear counters, fail_first tries and rate-limit windows."""
        httpx.post(f"{self.root_url}/mock/reset", timeout=10).raise_for_status()

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 5 s; returns the exit code (None if never started)."""
        process, self._process = self._process, None
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            code = process.returncode
        if self._output is not None:
            self._output.close()
            self._output = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        return code

    def __enter__(self) -> "MockProvider":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"MockProvider(port={self.port}, options={self.options!r})"


def admission_times(provider: MockProvider) -> list[float]:
    """When the provider admitted each call (its clock), in order."""
    return sorted(at for at, _ in provider.stats(detail=True)["admitted_at"])


def assert_room_spent_at_once(provider: MockProvider, jobs: int) -> None:
    """Every job answered once, no 429, and every call within a few seconds of the first (the
    even pace of a per-minute limit would spread them a second apart)."""
    stats = provider.stats()
    assert stats["completed"] == jobs and stats["duplicates"] == 0
    assert stats["rate_limited"] == 0, stats["by_status"]
    times = admission_times(provider)
    assert times[-1] - times[0] < 8, times
