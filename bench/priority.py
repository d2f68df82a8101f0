"""Benchmark: urgent jobs behind a saturating backlog, fairness between batches, and the cost
of priorities on throughput.

    python bench/priority.py                 # all three
    python bench/priority.py --only urgent   # or fair, throughput

urgent      a backlog of 5,000 priority-9 jobs saturates a deployment's limit (provider: 1,200
            requests per 10 s, latency 200 +- 100 ms; 4 worker processes); then 20 priority-0
            jobs. Time from the start of submit (Client.submit, or a new `llm-dispatch submit`
            process) to the provider receiving each urgent call. Compared with
            the same run where the 20 are submitted at priority 9 (priorities ignored), once
            with fair sharing between batches (the default) and once first-come-first-served
            (fair_share: false, what a FIFO queue does).
fair        batch A of 20,000 jobs, then batch B of 200 at the same priority: B's completion
            time, against 200 jobs at half the capacity.
throughput  5,000 jobs, provider latency 0, no limits: jobs/s and worker CPU per job with
            every job at one priority vs. lines spread over 0-9 (5 runs each, alternating).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import yaml  # noqa: E402

from bench.common import REDIS_URL, WorkerProcess, fresh_postgres_schema, mock_provider  # noqa: E402
from dispatcher import Client  # noqa: E402
from dispatcher.providers.mock.replies import fingerprint  # noqa: E402

WORKERS = 4
WINDOW_S = 10
PER_WINDOW = 1200  # requests per 10 s at the provider: 120/s


def make_config(folder: Path, base_url: str, *, rpm: int | None, fair_share: bool = True) -> Path:
    params = {"model": "openai/bench", "api_base": base_url, "api_key": "sk-bench", "timeout": 30}
    if rpm:
        params["rpm"] = rpm
    path = folder / f"cfg-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "chat", "litellm_params": params}],
        "dispatcher_settings": {
            "database_url": fresh_postgres_schema(), "redis_url": REDIS_URL,
            "namespace": f"bench-{uuid.uuid4().hex[:6]}", "default_model": "chat",
            "fair_share": fair_share,
        },
    }))
    return path


def requests(prefix: str, count: int, priority=None) -> list[dict]:
    lines = []
    for i in range(count):
        line = {"custom_id": f"{prefix}-{i}", "max_tokens": 20,
                "messages": [{"role": "user", "content": f"{prefix} {i} lorem ipsum"}]}
        if priority is not None:
            line["priority"] = priority(i) if callable(priority) else priority
        lines.append(line)
    return lines


def first_seen(base_url: str) -> dict[str, float]:
    return httpx.get(base_url.removesuffix("/v1") + "/mock/stats", params={"detail": "1"}, timeout=30).json()["first_seen"]


def submit_with_cli(config: Path, lines: list[dict], priority: int) -> str:
    """``llm-dispatch submit`` in a new process, as a user or a script would run it."""
    path = config.with_suffix(".urgent.jsonl")
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = subprocess.run(
        [sys.executable, "-m", "cli", "-c", str(config), "submit", str(path), "--priority", str(priority)],
        capture_output=True, check=True, cwd=Path(__file__).resolve().parent.parent,
    )
    return done.stdout.decode().strip()


def urgent_run(folder: Path, urgent_priority: int, fair_share: bool = True, cli: bool = False) -> dict:
    with mock_provider(rpm=PER_WINDOW, window_s=WINDOW_S, latency_ms=200, jitter_ms=100) as base:
        config = make_config(folder, base, rpm=PER_WINDOW * 60 // WINDOW_S, fair_share=fair_share)
        client = Client(config)
        client.database
        workers = [WorkerProcess(config) for _ in range(WORKERS)]
        time.sleep(3)
        backlog = client.submit(requests("bulk", 5000), priority=9)
        time.sleep(10)  # saturated by now
        urgent_lines = requests("urgent", 20)
        submitted = time.time()
        if cli:
            urgent_id = submit_with_cli(config, urgent_lines, urgent_priority)
        else:
            urgent_id = client.submit(urgent_lines, priority=urgent_priority).batch_id
        client.wait(urgent_id, timeout=300, poll_interval=0.2)
        seen = first_seen(base)
        waits = sorted(seen[fingerprint({"messages": line["messages"]})] - submitted for line in urgent_lines)
        client.cancel(backlog.batch_id)
        logs = [worker.stop()[1] for worker in workers]
        client.close()
    moved = sum(int(line.rsplit(" moved", 1)[0].rsplit(", ", 1)[1].split()[0])
                for log in logs for line in log.splitlines() if " moved ahead" in line)
    return {
        "urgent_priority": urgent_priority,
        "fair_share": fair_share,
        "submitted_with": "llm-dispatch submit (new process)" if cli else "Client.submit",
        "calls_moved_ahead": moved,
        "wait_p50_s": round(statistics.median(waits), 3),
        "wait_p95_s": round(waits[int(0.95 * (len(waits) - 1))], 3),
        "wait_max_s": round(waits[-1], 3),
    }


def fair_run(folder: Path) -> dict:
    rate = PER_WINDOW / WINDOW_S
    with mock_provider(rpm=PER_WINDOW, window_s=WINDOW_S, latency_ms=200, jitter_ms=100) as base:
        config = make_config(folder, base, rpm=PER_WINDOW * 60 // WINDOW_S)
        client = Client(config)
        client.database
        workers = [WorkerProcess(config) for _ in range(WORKERS)]
        time.sleep(3)
        big = client.submit(requests("a", 20000), priority=5)
        time.sleep(10)
        start = time.monotonic()
        small = client.submit(requests("b", 200), priority=5)
        client.wait(small.batch_id, timeout=300, poll_interval=0.2)
        elapsed = time.monotonic() - start
        client.cancel(big.batch_id)
        for worker in workers:
            worker.stop()
        client.close()
    half_capacity = 200 / (rate / 2)
    return {"small_batch_s": round(elapsed, 2), "200_at_half_capacity_s": half_capacity,
            "ratio": round(elapsed / half_capacity, 2)}


def throughput_run(folder: Path, base: str, spread: bool) -> tuple[float, float]:
    """(jobs/s, worker CPU ms per job) for 5,000 jobs."""
    config = make_config(folder, base, rpm=None)
    client = Client(config)
    client.database
    worker = WorkerProcess(config)
    time.sleep(2)
    rng = random.Random(1)
    lines = requests("t", 5000, priority=(lambda i: rng.randint(0, 9)) if spread else 5)
    cpu_before = worker.cpu_now()
    start = time.monotonic()
    batch = client.submit(lines)
    client.wait(batch.batch_id, timeout=300, poll_interval=0.05)
    elapsed = time.monotonic() - start
    cpu = worker.cpu_now() - cpu_before
    worker.stop()
    client.close()
    return 5000 / elapsed, cpu * 1000 / 5000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["urgent", "fair", "throughput"], action="append")
    args = parser.parse_args()
    chosen = args.only or ["urgent", "fair", "throughput"]
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "urgent" in chosen:
            report["urgent_with_priority"] = urgent_run(folder, 0)
            report["urgent_with_priority_cli"] = urgent_run(folder, 0, cli=True)
            report["urgent_priorities_ignored_fair_share"] = urgent_run(folder, 9)
            report["urgent_priorities_ignored_fifo"] = urgent_run(folder, 9, fair_share=False)
        if "fair" in chosen:
            report["fair"] = fair_run(folder)
        if "throughput" in chosen:
            with mock_provider() as base:
                one, spread = [], []
                for _ in range(5):
                    one.append(throughput_run(folder, base, spread=False))
                    spread.append(throughput_run(folder, base, spread=True))
            median = statistics.median
            report["throughput"] = {
                "one_priority_jobs_per_s": [round(r) for r, _ in one],
                "spread_priorities_jobs_per_s": [round(r) for r, _ in spread],
                "one_priority_cpu_ms_per_job": [round(c, 3) for _, c in one],
                "spread_priorities_cpu_ms_per_job": [round(c, 3) for _, c in spread],
                "median_jobs_per_s_ratio_spread_over_one": round(median([r for r, _ in spread]) / median([r for r, _ in one]), 3),
                "median_cpu_ratio_spread_over_one": round(median([c for _, c in spread]) / median([c for _, c in one]), 3),
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
