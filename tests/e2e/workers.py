"""Starting and stopping ``llm-dispatch worker`` subprocesses in tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env


class WorkerFleet:
    """``llm-dispatch -c CONFIG worker --processes N`` in the background."""

    def __init__(self, config: Path, processes: int = 2, *extra: str, env: dict | None = None):
        self.log_path = config.parent / f"worker-{id(self)}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "-c", str(config), "worker", "--processes", str(processes), *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env or cli_env(),
        )

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def claimed_per_worker(self) -> list[int]:
        """Jobs each worker process claimed, from their exit log lines."""
        import re

        return [int(n) for n in re.findall(r"stopped: (\d+) jobs claimed", self.log())]

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

    def __enter__(self) -> "WorkerFleet":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
