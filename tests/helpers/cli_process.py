"""An ``llm-dispatch`` command running in the background, its output in a log file."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env


class CliProcess:
    """``llm-dispatch -c CONFIG ARGS...``; ``stop`` sends SIGTERM (a graceful stop), then kills."""

    def __init__(self, config: Path, args: list[str], log_name: str, env: dict | None = None):
        self.log_path = config.parent / log_name
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "-c", str(config), *args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env or cli_env(),
        )

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

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
