"""Benchmark: a large batch through the providers' batch API route (``--via provider-batch``).

    python bench/provider_batch.py                       # 100,000 lines, PostgreSQL + Redis
    python bench/provider_batch.py --lines 20000 --database-url sqlite:////tmp/pb.db
    python bench/provider_batch.py --provider anthropic

One worker process drives the route against the mock provider's OpenAI Files + Batches (or
Anthropic's Message Batches): it forms the provider batches (OpenAI: 50,000 lines each), builds
and uploads each input file, creates, polls, downloads the results and writes them to their
jobs. Reported:

- worker CPU per 1,000 jobs (the whole worker process, from submit to the batch's end; the
  provider's own time is in the mock's process and not counted);
- import rate: result lines written to SQL per second, per provider batch, from the moment the
  worker saw it ended to the moment its last line was written (download, parse, write);
- the build + upload time per provider batch, and the end-to-end wall time (which includes
  the mock's ``--batch-delay-s``).

``--write-rate`` measures the database side alone: result lines written to the jobs of one
provider batch (``dispatcher.remote.results.write_results``, as the import calls it, in
chunks of ``--import-chunk``, ``--writers`` transactions at once), without a provider or a
download: the rate the database sustains, next to the end-to-end import rate above, which on
a 2-core machine shares the cores with the mock provider serving the download.
Record the figures in docs/benchmarks.md.
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

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    REDIS_URL, WorkerProcess, fresh_postgres_schema, mock_provider, provider_stats, reset_provider, write_requests,
)
from dispatcher import Client  # noqa: E402
from tests.helpers.sql import query  # noqa: E402


def write_config(folder: Path, base_url: str, provider: str, database_url: str, import_chunk: int) -> Path:
    if provider == "anthropic":
        params = {"model": "anthropic/claude-haiku-4-5", "api_base": base_url.removesuffix("/v1"),
                  "api_key": "sk-ant-bench"}
    else:
        params = {"model": "openai/bench", "api_base": base_url, "api_key": "sk-bench",
                  "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    document = {
        "model_list": [{"model_name": "chat", "litellm_params": params}],
        "dispatcher_settings": {
            "database_url": database_url, "redis_url": REDIS_URL,
            "namespace": f"bench-{uuid.uuid4().hex[:6]}", "default_model": "chat",
            "provider_batches": {"check_interval": 0.2, "first_poll": 0.5, "max_poll_interval": 1.0,
                                 "per_worker": 4, "import_chunk": import_chunk},
        },
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def run(args, folder: Path, base_url: str) -> dict:
    database_url = args.database_url or fresh_postgres_schema()
    config = write_config(folder, base_url, args.provider, database_url, args.import_chunk)
    requests = write_requests(folder / "in.jsonl", args.lines)
    with Client(config) as client:
        started = time.monotonic()
        batch = client.submit(str(requests), via="provider-batch")
        submit_s = time.monotonic() - started
        worker = WorkerProcess(config)
        try:
            info = client.wait(batch.batch_id, timeout=args.timeout, poll_interval=0.2)
            wall_s = time.monotonic() - started
        finally:
            cpu_s, log = worker.stop()
        if info.status != "completed" or info.succeeded != args.lines:
            raise SystemExit(f"batch ended {info.status} with {info.succeeded} succeeded:\n{log[-3000:]}")
    parts = query(database_url, "SELECT lines, created_at, submitted_at, ended_at, imported_at FROM provider_batches"
                                " ORDER BY part")
    import_rates = [p.lines / (p.imported_at - p.ended_at) for p in parts]
    send_s = [p.submitted_at - p.created_at for p in parts]
    first_end = min(p.ended_at for p in parts)
    last_import = max(p.imported_at for p in parts)
    stats = provider_stats(base_url)
    batches = stats["batches"][args.provider]
    return {
        "lines": args.lines, "provider": args.provider, "database": database_url.split(":", 1)[0],
        "provider_batches": len(parts), "uploads": batches["files_uploaded"], "creates": batches["batches_created"],
        "realtime_calls": sum(route.get("requests", 0) for name, route in stats["by_route"].items()
                              if name in ("openai.chat", "anthropic.messages")),
        "submit_s": round(submit_s, 2), "wall_s": round(wall_s, 2),
        "worker_cpu_s": round(cpu_s, 2), "worker_cpu_ms_per_1000_jobs": round(cpu_s / args.lines * 1e6, 1),
        "send_s_per_provider_batch": [round(s, 2) for s in send_s],
        "import_lines_per_s_per_provider_batch": [round(r) for r in import_rates],
        "import_lines_per_s_overall": round(args.lines / (last_import - first_end)),
        "cost": round(info.cost, 6),
    }


def write_rate(args) -> dict:
    """Result lines per second written by write_results alone (see the module docstring)."""
    import concurrent.futures

    from dispatcher.providers.base import Usage
    from dispatcher.providers.batch_api.base import LineKind, LineResult
    from dispatcher.remote.results import PartContext, write_results
    from dispatcher.store import provider_batches as part_sql

    database_url = args.database_url or fresh_postgres_schema()
    with tempfile.TemporaryDirectory(prefix="llmd-bench-pw-") as folder:
        config = write_config(Path(folder), "http://127.0.0.1:9/v1", "openai", database_url, args.import_chunk)
        with Client(config) as client:
            batch = client.submit(str(write_requests(Path(folder) / "in.jsonl", args.lines)), via="provider-batch")
            database = client.database
            with database.write() as connection:
                part_id, _ = part_sql.form_part(
                    connection, batch_id=batch.batch_id, group="chat", endpoint=None, deployment_id="chat#0",
                    part=0, max_lines=args.lines, max_bytes=1 << 40, now=time.time())
            with database.read() as connection:
                ids = [row.id for row in part_sql.part_jobs(connection, part_id, 0, args.lines)]
            body = json.dumps({"id": "chatcmpl-x", "object": "chat.completion", "choices": [{
                "index": 0, "message": {"role": "assistant", "content": "lorem ipsum " * 30}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 60, "completion_tokens": 50, "total_tokens": 110}}).encode()
            context = PartContext(part_id, batch.batch_id, "chat", "chat#0", "bench", time.time(), False, None)
            chunks = [[LineResult(f"j{job_id}", LineKind.SUCCEEDED, 200, body, Usage(60, 50, 110), None, "req")
                       for job_id in ids[start:start + args.import_chunk]]
                      for start in range(0, len(ids), args.import_chunk)]

            def write(lines):
                with database.write() as connection:
                    write_results(connection, context, lines, time.time(), postgres=not database.is_sqlite)

            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.writers) as pool:
                list(pool.map(write, chunks))
            elapsed = time.monotonic() - started
            info = client.status(batch.batch_id)
    assert info.succeeded == args.lines, info
    return {"mode": "write-rate", "lines": args.lines, "database": database_url.split(":", 1)[0],
            "writers": args.writers, "import_chunk": args.import_chunk,
            "lines_per_s": round(args.lines / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--provider", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--database-url", help="default: a fresh schema of the benchmark PostgreSQL")
    parser.add_argument("--batch-delay-s", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--import-chunk", type=int, default=2000, help="result lines per transaction")
    parser.add_argument("--write-rate", action="store_true", help="measure the database writes alone")
    parser.add_argument("--writers", type=int, default=3, help="--write-rate: transactions at once")
    args = parser.parse_args()
    if args.write_rate:
        rates = []
        for _ in range(args.runs):
            result = write_rate(args)
            print(json.dumps(result), flush=True)
            rates.append(result["lines_per_s"])
        if len(rates) > 1:
            print(f"median lines_per_s: {statistics.median(rates)}")
        return
    results = []
    with mock_provider(batch_delay_s=args.batch_delay_s) as base_url:
        for _ in range(args.runs):
            reset_provider(base_url)
            with tempfile.TemporaryDirectory(prefix="llmd-bench-pb-") as folder:
                result = run(args, Path(folder), base_url)
            print(json.dumps(result), flush=True)
            results.append(result)
    if len(results) > 1:
        for key in ("wall_s", "worker_cpu_ms_per_1000_jobs", "import_lines_per_s_overall"):
            print(f"median {key}: {statistics.median(r[key] for r in results)}")


if __name__ == "__main__":
    main()
