"""Benchmark: the HTTP API (``llm-dispatch serve``) on loopback.

    python bench/api.py                        # 100,000-line batch, 200 + 200 chat calls, 5 s at 32
    python bench/api.py --lines 500000         # the issue's full size: 200 MB (takes minutes)
    python bench/api.py --skip batch --redis-url redis://127.0.0.1:6379/0   # chat, distributed

Starts a real ``python -m cli -c CONFIG serve --port P`` (SQLite in a temp folder; embedded: the
jobs run in the server process; with ``--redis-url``, in ``workers.process`` processes) with the
HTTP mock provider at zero latency as the only deployment, and measures:
1. upload of an N-line JSONL batch file (``POST /v1/files``): MB/s, server RSS before/peak/after;
2. ``POST /v1/batches`` on it: seconds to answer and lines/s stored;
3. once the batch has completed, the streamed download of its output file: lines/s and RSS;
4. ``POST /v1/chat/completions``: p50/p95 of sequential calls against the same body sent straight
   to the mock provider (the overhead of the API and the queue), and requests/s from many
   concurrent connections (bench/load.py, a lean client, so that the client's CPU is not taken
   from the server), with the CPU the server (and the workers) spent per completion.
RSS is VmRSS of the serve process read from /proc. Prints one JSON document; record the
figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, WorkerProcess, mock_provider, process_cpu
from bench.load import hammer

ADMIN_ENV = "LLMD_BENCH_ADMIN_KEY"
FINAL_STATUSES = ("completed", "failed", "expired", "cancelled", "budget_exceeded")
PROMPT = "lorem ipsum dolor sit amet consectetur a"  # 40 bytes: the chat calls' prompt
LINE_BYTES = 400  # the 200 MB for 500,000 lines
MB = 1_000_000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class RssSampler:
    """Peak VmRSS of a process while a step runs, sampled every 20 ms in a thread."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(folder: Path, provider_url: str, *, redis_url: str | None = None,
                 database_url: str | None = None) -> Path:
    """Embedded mode (SQLite, no redis_url) unless ``redis_url`` is given (then the jobs run in
    worker processes); the HTTP mock is the ``chat`` group's deployment."""
    settings: dict = {
        "database_url": database_url or f"sqlite:///{folder / 'api.db'}",
        "default_model": "chat",
        "api": {"admin_key": f"os.environ/{ADMIN_ENV}"},
    }
    if redis_url:
        settings.update(redis_url=redis_url, namespace=f"bench-api-{secrets.token_hex(4)}")
    document = {
        "model_list": [{"model_name": "chat", "litellm_params": {
            "model": "openai/bench", "api_base": provider_url, "api_key": "sk-bench", "timeout": 60,
        }}],
        "router_settings": {"num_retries": 3},
        "dispatcher_settings": settings,
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@contextmanager
def serve(config: Path, admin_key: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python -m cli -c CONFIG serve --port P``; yields (process, root URL) once /health answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_DISPATCH_")}
    env.update({ADMIN_ENV: admin_key, "PYTHONPATH": str(REPO)})
    log = (config.parent / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "cli", "-c", str(config), "serve", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve did not start:\n" + (config.parent / "serve.log").read_text()[-3000:])
            try:
                if httpx.get(f"{root}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield process, root
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def write_batch_file(path: Path, lines: int, line_bytes: int) -> int:
    """``lines`` batch lines of about ``line_bytes`` bytes each (the prompt is padded)."""
    with path.open("w") as handle:
        for i in range(lines):
            line = json.dumps({
                "custom_id": f"r-{i}", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "chat", "messages": [{"role": "user", "content": "{}"}], "max_tokens": 16},
            }, separators=(",", ":"))
            prompt = (PROMPT * (line_bytes // len(PROMPT) + 1))[: max(1, line_bytes - len(line) - 1)]
            handle.write(line.replace("{}", prompt) + "\n")
    return path.stat().st_size


def upload_step(http: httpx.Client, pid: int, source: Path, size: int) -> tuple[str, dict]:
    before = rss_mb(pid)
    with RssSampler(pid) as sampler, source.open("rb") as handle:
        start = time.monotonic()
        answer = http.post("/v1/files", files={"file": ("input.jsonl", handle, "application/jsonl")},
                           data={"purpose": "batch"}, timeout=600)
        seconds = time.monotonic() - start
    answer.raise_for_status()
    after = rss_mb(pid)
    return answer.json()["id"], {
        "bytes": size,
        "seconds": round(seconds, 3),
        "mb_per_s": round(size / MB / seconds, 1),
        "rss_mb_before": round(before, 1),
        "rss_mb_peak": round(sampler.peak, 1),
        "rss_mb_after": round(after, 1),
        "rss_growth_mb_peak": round(sampler.peak - before, 1),
    }


def create_step(http: httpx.Client, pid: int, file_id: str, lines: int) -> tuple[str, dict]:
    before = rss_mb(pid)
    with RssSampler(pid) as sampler:
        start = time.monotonic()
        answer = http.post("/v1/batches", json={
            "input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h",
        }, timeout=600)
        seconds = time.monotonic() - start
    answer.raise_for_status()
    return answer.json()["id"], {
        "seconds": round(seconds, 3),
        "lines_per_s": round(lines / seconds, 1),
        "rss_mb_before": round(before, 1),
        "rss_mb_peak": round(sampler.peak, 1),
        "status_answered": answer.json()["status"],
    }


def wait_step(http: httpx.Client, pid: int, batch_id: str, lines: int, timeout: float) -> tuple[dict, dict]:
    start = time.monotonic()
    cpu_before = process_cpu(pid)
    while True:
        batch = http.get(f"/v1/batches/{batch_id}", timeout=60).json()
        if batch["status"] in FINAL_STATUSES:
            break
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"batch still {batch['status']} after {timeout:g}s: {batch['request_counts']}")
        time.sleep(0.5)
    seconds = time.monotonic() - start
    return batch, {
        "status": batch["status"],
        "request_counts": batch["request_counts"],
        "seconds_after_create": round(seconds, 2),
        "jobs_per_s": round(lines / seconds, 1),
        "server_cpu_s": round(process_cpu(pid) - cpu_before, 2),
        "rss_mb_after": round(rss_mb(pid), 1),
    }


def download_step(http: httpx.Client, pid: int, file_id: str) -> dict:
    before = rss_mb(pid)
    count = size = 0
    with RssSampler(pid) as sampler:
        start = time.monotonic()
        with http.stream("GET", f"/v1/files/{file_id}/content", timeout=600) as answer:
            answer.raise_for_status()
            first_byte = time.monotonic() - start
            for chunk in answer.iter_bytes():
                count += chunk.count(b"\n")
                size += len(chunk)
        seconds = time.monotonic() - start
    return {
        "lines": count,
        "bytes": size,
        "seconds": round(seconds, 3),
        "first_byte_s": round(first_byte, 3),
        "lines_per_s": round(count / seconds, 1),
        "mb_per_s": round(size / MB / seconds, 1),
        "rss_mb_before": round(before, 1),
        "rss_mb_peak": round(sampler.peak, 1),
        "rss_growth_mb_peak": round(sampler.peak - before, 1),
    }


def chat_body(i: int, model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": f"{i}: {PROMPT}"}], "max_tokens": 16}


def latencies_ms(http: httpx.Client, url: str, model: str, count: int, headers: dict) -> list[float]:
    for i in range(5):  # warm the connection and both paths
        http.post(url, json=chat_body(-i, model), headers=headers, timeout=60).raise_for_status()
    timings = []
    for i in range(count):
        start = time.perf_counter()
        http.post(url, json=chat_body(i, model), headers=headers, timeout=60).raise_for_status()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def chat_step(root: str, provider_url: str, admin_key: str, pid: int, count: int, clients: int,
              seconds: float, workers: list[WorkerProcess]) -> dict:
    auth = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client() as http:
        # Alternate halves so drift in machine load falls on both paths alike.
        api, direct = [], []
        for _ in range(2):
            direct += latencies_ms(http, f"{provider_url}/chat/completions", "bench", count // 2,
                                   {"Authorization": "Bearer sk-bench"})
            api += latencies_ms(http, f"{root}/v1/chat/completions", "chat", count // 2, auth)
    cpu_before = process_cpu(pid)
    workers_before = sum(worker.cpu_now() for worker in workers)
    load = asyncio.run(hammer(f"{root}/v1/chat/completions", auth, lambda i: chat_body(i, "chat"),
                              clients=clients, seconds=seconds))
    server_cpu = process_cpu(pid) - cpu_before
    load["server_cpu_s"] = round(server_cpu, 2)
    if load["completed"]:
        load["server_cpu_ms_per_completion"] = round(1000 * server_cpu / load["completed"], 2)
    if workers:
        worker_cpu = sum(worker.cpu_now() for worker in workers) - workers_before
        load["workers_cpu_s"] = round(worker_cpu, 2)
        if load["completed"]:
            load["workers_cpu_ms_per_completion"] = round(1000 * worker_cpu / load["completed"], 2)
    api_p50, direct_p50 = statistics.median(api), statistics.median(direct)
    return {
        "sequential_requests": len(api),
        "api_ms_p50": round(api_p50, 2),
        "api_ms_p95": round(percentile(api, 0.95), 2),
        "direct_ms_p50": round(direct_p50, 2),
        "direct_ms_p95": round(percentile(direct, 0.95), 2),
        "overhead_ms_p50": round(api_p50 - direct_p50, 2),
        "concurrent": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the batch file")
    parser.add_argument("--line-bytes", type=int, default=LINE_BYTES, help="bytes of each batch line")
    parser.add_argument("--chat-requests", type=int, default=200, help="sequential calls on each path")
    parser.add_argument("--clients", type=int, default=32, help="concurrent chat clients")
    parser.add_argument("--load-seconds", type=float, default=5.0)
    parser.add_argument("--batch-timeout", type=float, default=600.0)
    parser.add_argument("--skip", choices=["batch", "chat"], action="append", default=[])
    parser.add_argument("--redis-url", help="distributed mode: the API only stores and reads, "
                        "`--worker-processes` worker processes run the jobs (e.g. redis://127.0.0.1:6379/0)")
    parser.add_argument("--database-url", help="default: SQLite in a temp folder")
    parser.add_argument("--worker-processes", type=int, default=1, help="distributed mode only")
    args = parser.parse_args()
    report: dict = {"lines": args.lines, "mode": "distributed" if args.redis_url else "embedded"}
    admin_key = "llmd-admin-" + secrets.token_urlsafe(16)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, mock_provider() as provider_url:
        folder = Path(tmp)
        config = write_config(folder, provider_url, redis_url=args.redis_url, database_url=args.database_url)
        if args.database_url:  # a server database is upgraded by hand, as users do
            subprocess.run([sys.executable, "-m", "cli", "-c", str(config), "db", "upgrade"], check=True, cwd=REPO,
                           stdout=subprocess.DEVNULL)
        workers = [WorkerProcess(config) for _ in range(args.worker_processes if args.redis_url else 0)]
        with serve(config, admin_key) as (process, root):
            pid = process.pid
            report["server_rss_mb_idle"] = round(rss_mb(pid), 1)
            headers = {"Authorization": f"Bearer {admin_key}"}
            with httpx.Client(base_url=root, headers=headers) as http:
                if "batch" not in args.skip:
                    source = folder / "input.jsonl"
                    size = write_batch_file(source, args.lines, args.line_bytes)
                    file_id, report["1_upload"] = upload_step(http, pid, source, size)
                    batch_id, report["2_batches_create"] = create_step(http, pid, file_id, args.lines)
                    batch, report["3a_batch_run"] = wait_step(http, pid, batch_id, args.lines, args.batch_timeout)
                    report["3_output_download"] = download_step(http, pid, batch["output_file_id"])
            if "chat" not in args.skip:
                report["4_chat_completions"] = chat_step(root, provider_url, admin_key, pid, args.chat_requests,
                                                         args.clients, args.load_seconds, workers)
            report["server_rss_mb_end"] = round(rss_mb(pid), 1)
        for worker in workers:
            worker.stop()
    report["total_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
