"""Starting and stopping ``llm-dispatch worker`` subprocesses in tests."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.cli_process import CliProcess


class WorkerFleet(CliProcess):
    """``llm-dispatch -c CONFIG worker --processes N`` in the background."""

    def __init__(self, config: Path, processes: int = 2, *extra: str, env: dict | None = None):
        super().__init__(config, ["worker", "--processes", str(processes), *extra],
                         f"worker-{id(self)}.log", env)

    def claimed_per_worker(self) -> list[int]:
        """Jobs each worker process claimed, from their exit log lines."""
        return [int(n) for n in re.findall(r"stopped: (\d+) jobs claimed", self.log())]
