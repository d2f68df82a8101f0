"""Benchmark: one batch of a million jobs end to end on PostgreSQL + Redis, 2 worker processes.

    python bench/million.py                    # 1,000,000 jobs
    python bench/million.py --jobs 100000      # a smaller rehearsal

The mock provider answers at once (latency 0, no limits), so what is measured is the
dispatcher: ``llm-dispatch submit`` (lines/s, peak RSS of the client process), Redis memory
while the batch is queued, jobs/s until the batch has ended and the workers' CPU per job,
``llm-dispatch results`` (lines/s, peak RSS), and the database's size before and after
``llm-dispatch prune`` (then after VACUUM, and VACUUM FULL). Everything runs on this machine's
two cores: the mock, PostgreSQL and Redis share them with the workers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.common import (  # noqa: E402
    POSTGRES_URL, REDIS_URL, REPO, fresh_postgres_schema, mock_provider, process_cpu, write_config,
    write_requests,
)
from dispatcher import Client  # noqa: E402


def timed_cli(config: Path, *args: str) -> dict:
    """Run ``llm-dispatch`` in a new process: wall seconds, peak RSS (MiB), stdout."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "-c", str(config), *args], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = process.communicate()
    wall = time.monotonic() - started
    if process.returncode:
        raise RuntimeError(f"llm-dispatch {args[0]} failed: {err.decode()[-2000:]}")
    return {"wall_s": wall, "stdout": out.decode(), "peak_rss_mib": _children_peak_rss_mib()}


def _children_peak_rss_mib() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def schema_of(url: str) -> str:
    return url.rsplit("search_path%3D", 1)[1]


def database_bytes(schema: str) -> dict:
    engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).all()
    engine.dispose()
    tables = {name: size for name, size in rows}
    return {"total": sum(tables.values()), "jobs": tables.get("jobs", 0), "attempts": tables.get("attempts", 0)}


def fleet_vacuums(schema: str) -> int:
    """How many times the workers VACUUMed jobs (store/vacuum.py): the bench has not yet."""
    engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        count = connection.exec_driver_sql(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'jobs'", (schema,)
        ).scalar()
    engine.dispose()
    return int(count or 0)


def vacuum(schema: str, full: bool) -> None:
    engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for table in ("jobs", "attempts", "batches"):
            connection.exec_driver_sql(f'VACUUM {"FULL " if full else ""}"{schema}"."{table}"')
    engine.dispose()


class RedisMemory:
    """Samples Redis's used_memory every second (the peak while the batch runs)."""

    def __init__(self) -> None:
        self._client = redis.Redis.from_url(REDIS_URL)
        self.baseline = self.now()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def now(self) -> int:
        return int(self._client.info("memory")["used_memory"])

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, self.now())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(jobs: int) -> dict:
    report: dict = {"jobs": jobs}
    with tempfile.TemporaryDirectory() as tmp, mock_provider() as base:
        folder = Path(tmp)
        url = fresh_postgres_schema()
        schema = schema_of(url)
        config = write_config(folder, base, database_url=url, redis_url=REDIS_URL,
                              namespace=f"bench-{uuid.uuid4().hex[:6]}")
        source = write_requests(folder / "requests.jsonl", jobs, prompt_chars=200, max_tokens=50)
        report["input_mib"] = round(source.stat().st_size / 2**20, 1)
        logs = [open(folder / f"worker{i}.log", "w") for i in range(2)]
        workers = [
            subprocess.Popen([sys.executable, "-m", "workers.process", "--config", str(config)],
                             cwd=REPO, stderr=logs[i])
            for i in range(2)
        ]
        time.sleep(3)
        memory = RedisMemory()
        started = time.monotonic()
        submitted = timed_cli(config, "submit", str(source))
        batch_id = submitted["stdout"].strip().splitlines()[-1]
        report["submit"] = {
            "wall_s": round(submitted["wall_s"], 1),
            "lines_per_s": round(jobs / submitted["wall_s"]),
            "client_peak_rss_mib": submitted["peak_rss_mib"],
        }
        client = Client(config)
        info = client.wait(batch_id, timeout=24 * 3600, poll_interval=2.0)
        elapsed = time.monotonic() - started
        memory.stop()
        cpu = sum(process_cpu(w.pid) for w in workers)
        report["run"] = {
            "status": info.status, "succeeded": info.succeeded, "failed": info.failed,
            "wall_s_from_submit": round(elapsed, 1), "jobs_per_s": round(jobs / elapsed),
            "worker_cpu_ms_per_job": round(cpu * 1000 / jobs, 3),
            "redis_used_memory_baseline_mib": round(memory.baseline / 2**20, 1),
            "redis_used_memory_peak_mib": round(memory.peak / 2**20, 1),
            "redis_bytes_per_job_at_peak": round((memory.peak - memory.baseline) / jobs, 2),
            "fleet_vacuums_of_jobs": fleet_vacuums(schema),
        }
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(60)
        before = database_bytes(schema)
        exported = timed_cli(config, "results", batch_id, "-o", str(folder / "out.jsonl"))
        lines = sum(1 for _ in open(folder / "out.jsonl", "rb"))
        report["export"] = {
            "lines": lines, "wall_s": round(exported["wall_s"], 1),
            "lines_per_s": round(lines / exported["wall_s"]),
            "peak_rss_mib_of_any_cli_so_far": exported["peak_rss_mib"],
        }
        pruned = timed_cli(config, "prune", "--finished-before", "0s", "--json")
        after_prune = database_bytes(schema)
        vacuum(schema, full=False)
        after_vacuum = database_bytes(schema)
        vacuum(schema, full=True)
        after_full = database_bytes(schema)
        report["database"] = {
            "bytes_per_job_after_batch": round(before["total"] / jobs),
            "total_mib_after_batch": round(before["total"] / 2**20, 1),
            "jobs_table_mib_after_batch": round(before["jobs"] / 2**20, 1),
            "prune_wall_s": round(pruned["wall_s"], 1),
            "prune": json.loads(pruned["stdout"] or "{}"),
            "total_mib_after_prune": round(after_prune["total"] / 2**20, 1),
            "total_mib_after_prune_and_vacuum": round(after_vacuum["total"] / 2**20, 1),
            "total_mib_after_prune_and_vacuum_full": round(after_full["total"] / 2**20, 1),
            "bytes_per_job_after_vacuum_full": round(after_full["total"] / jobs),
        }
        client.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    args = parser.parse_args()
    print(json.dumps(run(args.jobs), indent=2), flush=True)


if __name__ == "__main__":
    main()
