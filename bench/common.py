"""Shared pieces of the benchmarks: a mock provider process, configs, timing helpers."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("LLMD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "LLMD_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def mock_provider(**options) -> Iterator[str]:
    """Start ``python -m dispatcher.mockserver``; yields its base URL (…/v1)."""
    with tempfile.TemporaryDirectory() as folder:
        port_file = Path(folder) / "port"
        command = [sys.executable, "-m", "dispatcher.mockserver", "--port", "0", "--port-file", str(port_file)]
        for key, value in options.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        process = subprocess.Popen(command)
        try:
            deadline = time.monotonic() + 15
            while not port_file.exists():
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("mock provider did not start")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port_file.read_text().strip()}/v1"
        finally:
            process.terminate()
            process.wait(10)


def reset_provider(base_url: str) -> None:
    httpx.post(base_url.removesuffix("/v1") + "/mock/reset", timeout=10).raise_for_status()


def provider_stats(base_url: str) -> dict:
    return httpx.get(base_url.removesuffix("/v1") + "/mock/stats", timeout=10).json()


def fresh_postgres_schema() -> str:
    """A URL pointing at a new, migrated schema (named bench_*, dropped when the bench exits)."""
    import atexit

    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()

    def drop() -> None:
        cleanup = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with cleanup.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        cleanup.dispose()

    atexit.register(drop)
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    from dispatcher.store.database import Database
    from dispatcher.store.migrate import upgrade

    database = Database(url)
    upgrade(database)
    database.dispose()
    return url


def write_config(folder: Path, base_url: str, *, database_url: str, redis_url: str | None,
                 namespace: str, deployment: dict | None = None, worker: dict | None = None,
                 router: dict | None = None, settings: dict | None = None) -> Path:
    params = {"model": "openai/bench", "api_base": base_url, "api_key": "sk-bench", "timeout": 60}
    params.update(deployment or {})
    document = {
        "model_list": [{"model_name": "chat", "litellm_params": params}],
        "router_settings": {"num_retries": 3, **(router or {})},
        "dispatcher_settings": {
            "database_url": database_url,
            "redis_url": redis_url,
            "namespace": namespace,
            "default_model": "chat",
            "worker": worker or {},
            **(settings or {}),
        },
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def write_requests(path: Path, count: int, *, prompt_chars: int = 200, max_tokens: int = 50) -> Path:
    filler = ("lorem ipsum dolor sit amet " * (prompt_chars // 27 + 1))[:prompt_chars]
    with path.open("w") as handle:
        for i in range(count):
            handle.write(json.dumps({
                "custom_id": f"req-{i}",
                "messages": [{"role": "user", "content": f"{i}: {filler}"}],
                "max_tokens": max_tokens,
            }) + "\n")
    return path


def process_cpu(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class WorkerProcess:
    """``python -m workers.process`` with its CPU time read when it exits (wait4 rusage)."""

    def __init__(self, config: Path, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workers.process", "--config", str(config), "--verbose", "1", *args],
            stderr=subprocess.PIPE,
        )

    def cpu_now(self) -> float:
        return process_cpu(self.process.pid)

    def stop(self) -> tuple[float, str]:
        """SIGTERM, wait; returns (CPU seconds user+system, its log)."""
        self.process.terminate()
        _, _, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = 0
        log = self.process.stderr.read().decode(errors="replace")
        return usage.ru_utime + usage.ru_stime, log


def wait_until_done(client, batch_id: str, timeout: float = 600) -> tuple[float, object]:
    """(seconds until the batch ended, its final BatchInfo)."""
    start = time.monotonic()
    info = client.wait(batch_id, timeout=timeout, poll_interval=0.05)
    return time.monotonic() - start, info


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
