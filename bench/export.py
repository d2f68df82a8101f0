"""Benchmark: exporting a finished batch's results (``llm-dispatch results``, the API's output file).

    python bench/export.py                          # 1,000,000 lines, PostgreSQL
    python bench/export.py --jobs 200000 --api      # also GET /v1/files/{output_file_id}/content
    python bench/export.py --database sqlite --jobs 200000

Fills a fresh database (a new PostgreSQL schema, or a SQLite file) with one batch of N finished
jobs in a single ``INSERT ... SELECT`` (2% failed, the rest succeeded with a ~500-byte chat
completion body), without ANALYZE: the statistics are those of a freshly filled table, which
autovacuum has not visited yet. Then it times, in a child process each (so peak RSS is the
export's own):
1. ``Client.write_results`` (what the CLI calls) writing the output and error files, ``--repeat``
   times (the median run is reported: the machine may be shared);
2. ``python -m cli results BATCH -o FILE --errors FILE`` once (unless ``--no-cli``);
3. with ``--api``, the streamed download of the output file from ``serve``;
then runs ANALYZE and times 1 again. Prints the page query's plans (stale and analyzed) and
one JSON document; record the figures in docs/benchmarks.md ("Exports").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import ADMIN_ENV, download_step, rss_mb, serve
from bench.common import REPO, fresh_postgres_schema, self_cpu

FAILED_EVERY = 50  # one job in 50 failed: the error file has lines too

BATCH_ROW = """
INSERT INTO batches (id, status, endpoint, priority, weight, completion_window, created_at,
    total, succeeded, failed, cancelled, expired, prompt_tokens, completion_tokens,
    total_tokens, cached_tokens, cost, cost_unknown, cache_mode, kind, via)
VALUES (:batch_id, 'completed', '/v1/chat/completions', 5, 1.0, '24h', :now,
    :total, :total - :failed, :failed, 0, 0, 0, 0, 0, 0, 0.0, 0, 0, 'batch', 'realtime')
"""

# Rows come from SERIES (i = 0..N-1); failed jobs have no response and an error. The bodies
# are bound with the columns' own types, so they are stored as the store stores them.
JOB_ROWS = """
INSERT INTO jobs (batch_id, seq, line_no, custom_id, model_group, priority, fair_key, body,
    est_prompt_tokens, est_completion_tokens, status, claim, not_before, attempts, retries,
    worker_deaths, cache_mode, awaited, created_at, finished_at, response_status, response,
    request_id, error_code, error_message)
SELECT :batch_id, i, i + 1, 'request-' || i, 'chat', 5, 0.0, :body, 12, 50,
    CASE WHEN i % :every = :every - 1 THEN 'failed' ELSE 'succeeded' END,
    1, 0.0, 1, 0, 0, 0, :no, :now, :now,
    CASE WHEN i % :every = :every - 1 THEN NULL ELSE 200 END,
    CASE WHEN i % :every = :every - 1 THEN NULL ELSE :response END,
    CASE WHEN i % :every = :every - 1 THEN NULL ELSE 'req_' || i END,
    CASE WHEN i % :every = :every - 1 THEN 'server_error' ELSE NULL END,
    CASE WHEN i % :every = :every - 1 THEN 'the provider answered 500 three times' ELSE NULL END
FROM SERIES
"""
REQUEST = json.dumps({"messages": [{"role": "user", "content": "Say something about foxes"}], "max_tokens": 50})
RESPONSE = json.dumps({  # an OpenAI chat completion, ~470 bytes
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1764500000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {
        "role": "assistant", "refusal": None,
        "content": "Foxes are small omnivores of the dog family, found on every continent but Antarctica; "
                   "they hunt alone, mostly at dusk, and cache food for later."},
        "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 41, "total_tokens": 53},
    "system_fingerprint": "fp_0ba0d124f1",
}, separators=(",", ":"))

SERIES = {
    "postgresql": "generate_series(0, :total - 1) AS g(i)",
    "sqlite": "(WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i + 1 < :total) "
              "SELECT i FROM g)",
}


def fill(url: str, count: int) -> str:
    """One completed batch of ``count`` finished jobs; returns its id. No ANALYZE."""
    from dispatcher.store.tables import jobs

    engine = sa.create_engine(url)
    batch_id = f"batch_bench{secrets.token_hex(6)}"
    failed = count // FAILED_EVERY
    params = dict(batch_id=batch_id, now=time.time(), total=count, failed=failed, every=FAILED_EVERY,
                  no=False, body=REQUEST, response=RESPONSE)
    rows = sa.text(JOB_ROWS.replace("SERIES", SERIES[engine.dialect.name])).bindparams(
        sa.bindparam("body", type_=jobs.c.body.type), sa.bindparam("response", type_=jobs.c.response.type))
    with engine.begin() as connection:
        connection.execute(sa.text(BATCH_ROW), params)
        connection.execute(rows, params)
    engine.dispose()
    return batch_id


def analyze(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE" if engine.dialect.name == "sqlite" else "ANALYZE jobs")
    engine.dispose()


def former_page_query(batch_id: str, statuses: tuple[str, ...], last_seq: int) -> sa.Select:
    """The keyset page query exports used before (for its plan, shown beside the new one's)."""
    from dispatcher.client.export import PAGE, ROW_COLUMNS
    from dispatcher.store.tables import jobs

    return (sa.select(*ROW_COLUMNS)
            .where(jobs.c.batch_id == batch_id, jobs.c.seq > last_seq, jobs.c.status.in_(statuses))
            .order_by(jobs.c.seq).limit(PAGE))


def page_plans(url: str, batch_id: str, count: int) -> dict[str, str]:
    """EXPLAIN ANALYZE of a page from the middle of the output and error files (PostgreSQL),
    with the page query and with the former one."""
    from dispatcher.client.export import FAILED_STATUSES, page_query
    from dispatcher.store.tables import JobStatus

    engine = sa.create_engine(url)
    plans = {}
    with engine.connect() as connection:
        for kind, statuses in (("output", (JobStatus.SUCCEEDED,)), ("error", FAILED_STATUSES)):
            for name, query in (("page", page_query), ("former", former_page_query)):
                compiled = query(batch_id, statuses, count // 2).compile(
                    engine, compile_kwargs={"literal_binds": True})
                rows = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, TIMING OFF) {compiled}").all()
                plans[f"{name} {kind}"] = "\n".join(row[0] for row in rows)
    engine.dispose()
    return plans


def run_child(args: list[str]) -> dict:
    """Run this script as a child (``--child ...``); its last stdout line is its JSON report."""
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"the export child failed:\n{done.stderr.decode()[-3000:]}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def timed_exports(config: Path, batch_id: str, folder: str, repeat: int) -> dict:
    """``repeat`` exports, each in a fresh child: the median run's figures, every run's lines/s."""
    runs = sorted((run_child(["--child", str(config), batch_id, folder]) for _ in range(repeat)),
                  key=lambda run: run["lines_per_s"])
    return {**runs[len(runs) // 2], "lines_per_s_runs": [run["lines_per_s"] for run in runs]}


def child_export(config: str, batch_id: str, folder: str) -> None:
    """In the child: time ``Client.write_results``; print lines/s and peak RSS."""
    from dispatcher import Client

    with Client(config) as client:
        client.status(batch_id)  # connected: the timing is the export's alone
        rss_before = rss_mb(os.getpid())
        start, cpu = time.perf_counter(), self_cpu()
        counts = client.write_results(batch_id, Path(folder) / "out.jsonl", Path(folder) / "err.jsonl")
        seconds, cpu = time.perf_counter() - start, self_cpu() - cpu
    lines = counts.succeeded + counts.failed
    print(json.dumps({
        "lines": lines, "seconds": round(seconds, 2), "lines_per_s": round(lines / seconds),
        "cpu_s": round(cpu, 2), "lines_per_cpu_s": round(lines / cpu),
        "output_mb": round((Path(folder) / "out.jsonl").stat().st_size / 1e6, 1),
        "rss_mb_before": round(rss_before, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def cli_export(config: Path, batch_id: str, folder: Path, lines: int) -> dict:
    """``python -m cli results`` once, start-up included; its peak RSS from wait4."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "cli", "-c", str(config), "results", batch_id,
                                "-o", str(folder / "cli-out.jsonl"), "--errors", str(folder / "cli-err.jsonl")],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"llm-dispatch results exited with {process.returncode}")
    return {"lines": lines, "seconds": round(seconds, 2), "lines_per_s": round(lines / seconds),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def api_download(config: Path, batch_id: str) -> dict:
    """The streamed download of the batch's output file from ``serve`` (bench/api.py's step)."""
    admin_key = "sk-admin-" + secrets.token_hex(8)
    with serve(config, admin_key) as (process, root):
        headers = {"authorization": f"Bearer {admin_key}"}
        with httpx.Client(base_url=root, headers=headers, timeout=60) as http:
            return download_step(http, process.pid, f"file-out-{batch_id}")


def write_config(folder: Path, database_url: str) -> Path:
    """No provider is called: the batch is finished before anything reads the config."""
    document = {
        "model_list": [{"model_name": "chat", "litellm_params": {
            "model": "openai/bench", "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-bench"}}],
        "dispatcher_settings": {"database_url": database_url, "default_model": "chat",
                                "api": {"admin_key": f"os.environ/{ADMIN_ENV}"}},
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--repeat", type=int, default=3, help="client exports per statistics state (median)")
    parser.add_argument("--api", action="store_true", help="also time the API's output file download")
    parser.add_argument("--no-cli", dest="cli", action="store_false", help="skip the CLI run")
    parser.add_argument("--child", nargs=3, metavar=("CONFIG", "BATCH", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_export(*args.child)
        return

    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        url = fresh_postgres_schema() if args.database == "postgres" else f"sqlite:///{folder / 'export.db'}"
        if args.database == "sqlite":
            from dispatcher.store.database import Database
            from dispatcher.store.migrate import upgrade

            database = Database(url)
            upgrade(database)
            database.dispose()
        config = write_config(folder, url)
        start = time.perf_counter()
        batch_id = fill(url, args.jobs)
        report: dict = {"database": args.database, "jobs": args.jobs,
                        "fill_s": round(time.perf_counter() - start, 1)}
        postgres = args.database == "postgres"
        if postgres:
            report["plans_stale"] = page_plans(url, batch_id, args.jobs)
        report["client_stale"] = timed_exports(config, batch_id, temp, args.repeat)
        if args.cli:
            report["cli_stale"] = cli_export(config, batch_id, folder, report["client_stale"]["lines"])
        if args.api:
            report["api_output_file_stale"] = api_download(config, batch_id)
        start = time.perf_counter()
        analyze(url)
        report["analyze_s"] = round(time.perf_counter() - start, 2)
        if postgres:
            report["plans_analyzed"] = page_plans(url, batch_id, args.jobs)
        report["client_analyzed"] = timed_exports(config, batch_id, temp, args.repeat)
    for name in ("plans_stale", "plans_analyzed"):
        for kind, plan in report.get(name, {}).items():
            print(f"-- {name} {kind}\n{plan}\n", file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
