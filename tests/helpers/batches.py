"""Waiting for a batch to end without starting a CLI process per poll.

A ``status --json`` subprocess costs about 0.5 s of CPU; polled every 0.5 s it took half a
core from the workers under test on a 2-core machine. The polls read the same row in this
process; the caller then reads the final state through the CLI once, as before.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

FINAL_STATUSES = ("completed", "failed", "cancelled", "expired", "budget_exceeded")


def wait_until_final(config: Path, batch_id: str, timeout: float) -> None:
    """Poll the batch's status in this process until it is final; AssertionError after timeout."""
    from dispatcher.client import Client

    # The config's own database, whatever LLM_DISPATCH_DATABASE_URL this process has (the CLI
    # runs with those variables removed).
    database_url = yaml.safe_load(Path(config).read_text())["dispatcher_settings"]["database_url"]
    deadline = time.monotonic() + timeout
    with Client(config, database_url=database_url) as client:
        while True:
            batch = client.status(batch_id)
            if batch.status in FINAL_STATUSES:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"batch still {batch.status} after {timeout}s: "
                    f"{batch.succeeded} completed, {batch.failed} failed of {batch.total}"
                )
            time.sleep(0.2)
