"""Benchmark: end-to-end dispatch throughput and worker CPU per job.

    python bench/throughput.py                 # both scenarios, distributed and embedded
    python bench/throughput.py --jobs 5000 --latency-jobs 2000 --runs 3
    python bench/throughput.py --skip b --skip embedded --processes 2   # CPU per job, 2 workers

(a) provider latency 0: jobs per second from the start of ``submit`` until the batch has
    ended, and worker CPU seconds per 1,000 jobs (all of the worker process: dramatiq,
    claiming, HTTP, persistence). Distributed: Redis + PostgreSQL + one worker process.
    Embedded: SQLite + in-process broker, everything in this process.
(b) provider latency 1 s: how many calls one worker process keeps in flight (peak seen by the
    provider) and the wall time for N jobs.
Figures are medians over ``--runs``; record them in docs/benchmarks.md.
``--provider anthropic`` runs the same jobs through the Anthropic adapter (``anthropic/``,
the mock's Messages API) instead of the OpenAI-compatible one, for the adapter's CPU per job.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    REDIS_URL,
    WorkerProcess,
    fresh_postgres_schema,
    mock_provider,
    provider_stats,
    reset_provider,
    self_cpu,
    wait_until_done,
    write_config,
    write_requests,
)
from dispatcher import Client  # noqa: E402


PROVIDERS = ("openai", "anthropic")


def adapter_deployment(provider: str, base_url: str) -> dict | None:
    """The deployment's litellm_params for ``provider`` at the mock (None: write_config's
    openai/bench at its /v1)."""
    if provider == "anthropic":
        return {"model": "anthropic/claude-haiku-4-5", "api_base": base_url.removesuffix("/v1")}
    return None


def distributed_run(base_url: str, jobs: int, folder: Path, worker: dict | None = None,
                    deployment: dict | None = None, processes: int = 1) -> dict:
    config = write_config(
        folder, base_url, database_url=fresh_postgres_schema(), redis_url=REDIS_URL,
        namespace=f"bench-{uuid.uuid4().hex[:6]}", worker=worker, deployment=deployment,
    )
    source = write_requests(folder / "requests.jsonl", jobs)
    client = Client(config)
    client.database  # migrate before timing
    reset_provider(base_url)
    workers = [WorkerProcess(config) for _ in range(processes)]
    time.sleep(2.0 * processes)  # let the workers import and register before the clock starts
    cpu_before = sum(process.cpu_now() for process in workers)
    start = time.monotonic()
    result = client.submit(source)
    submitted = time.monotonic() - start
    _, info = wait_until_done(client, result.batch_id)
    wall = time.monotonic() - start
    cpu_batch = sum(process.cpu_now() for process in workers) - cpu_before
    stopped = [process.stop() for process in workers]
    cpu, log = sum(c for c, _ in stopped), "".join(text for _, text in stopped)
    after = provider_stats(base_url)
    client.close()
    assert info.succeeded == jobs, (info, log[-2000:])
    return {
        "jobs": jobs,
        "worker_processes": processes,
        "submit_s": round(submitted, 3),
        "wall_s": round(wall, 3),
        "jobs_per_s": round(jobs / wall, 1),
        "worker_cpu_s_whole_life": round(cpu, 3),
        "worker_cpu_s_during_batch": round(cpu_batch, 3),
        "worker_cpu_ms_per_job": round(cpu_batch * 1000 / jobs, 3),
        "provider_completed": after["completed"],
        "provider_peak_in_flight": after["max_in_flight"],
    }


def embedded_run(base_url: str, jobs: int, folder: Path, deployment: dict | None = None) -> dict:
    config = write_config(
        folder, base_url, database_url=f"sqlite:///{folder / f'e-{uuid.uuid4().hex[:6]}.db'}",
        redis_url=None, namespace="bench", deployment=deployment,
    )
    source = write_requests(folder / "requests.jsonl", jobs)
    client = Client(config)
    client.database
    node = client.start_worker()
    cpu_before = self_cpu()
    start = time.monotonic()
    result = client.submit(source)
    submitted = time.monotonic() - start
    _, info = wait_until_done(client, result.batch_id)
    wall = time.monotonic() - start
    cpu = self_cpu() - cpu_before
    node.stop()
    client.close()
    assert info.succeeded == jobs, info
    return {
        "jobs": jobs,
        "submit_s": round(submitted, 3),
        "wall_s": round(wall, 3),
        "jobs_per_s": round(jobs / wall, 1),
        "process_cpu_s": round(cpu, 3),
        "process_cpu_ms_per_job": round(cpu * 1000 / jobs, 3),
    }


def median_of(runs: list[dict]) -> dict:
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--latency-jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip", choices=["a", "b", "embedded"], action="append", default=[])
    parser.add_argument("--processes", type=int, default=1, help="worker processes in scenario (a)")
    parser.add_argument("--provider", choices=PROVIDERS, default="openai",
                        help="the adapter the jobs go through (default: openai)")
    args = parser.parse_args()
    report: dict = {"provider": args.provider}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "a" not in args.skip:
            with mock_provider() as base_url:
                deployment = adapter_deployment(args.provider, base_url)
                runs = [distributed_run(base_url, args.jobs, folder, deployment=deployment, processes=args.processes)
                        for _ in range(args.runs)]
                report["a_distributed_latency0"] = {"runs": runs, "median": median_of(runs)}
                if "embedded" not in args.skip:
                    runs = [embedded_run(base_url, args.jobs, folder, deployment) for _ in range(args.runs)]
                    report["a_embedded_latency0"] = {"runs": runs, "median": median_of(runs)}
        if "b" not in args.skip:
            with mock_provider(latency_ms=1000) as base_url:
                deployment = adapter_deployment(args.provider, base_url)
                runs = [distributed_run(base_url, args.latency_jobs, folder, deployment=deployment)
                        for _ in range(args.runs)]
                report["b_distributed_latency1s"] = {"runs": runs, "median": median_of(runs)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
