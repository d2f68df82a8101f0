"""Benchmark: a provider that counts per minute, with and without reading its rate-limit headers.

    python bench/minute_limits.py                  # both scenarios, headers read and even pace
    python bench/minute_limits.py --only wall      # or urgent

wall    2,000 requests against a provider allowing 700 requests and 70,000 tokens per 60-second
        sliding window (latency 200 +- 100 ms), 4 worker processes sharing the limits through
        Redis. The ideal wall is what the provider allows at best: a window's 700 at once,
        then the next 700 when the first leave the window, so the last request is admitted
        at floor(1999 / 700) x 60 s and answered 0.2 s later. Reported: wall (submit to the
        last answer at the provider), ideal / wall, 429s, the peak in any 60 s.
urgent  a backlog of priority-9 jobs against a provider allowing 100 requests per 60 s, then
        5 priority-0 jobs submitted one at a time, 2 s apart: the time from each submit
        returning to the provider receiving the call. Three cases: a backlog of 60 (the
        window keeps room), of 300 (the backlog spends every window), and of 300 with
        ``rate_limits.urgent_reserve: 0.1`` (a tenth of the window kept for urgent calls).
Each scenario runs with ``rate_limits.provider_headers`` on (the default) and off (the even
pace of the releases before it), back to back.
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

import httpx  # noqa: E402
import yaml  # noqa: E402

from bench.common import REDIS_URL, WorkerProcess, fresh_postgres_schema, mock_provider  # noqa: E402
from dispatcher import Client  # noqa: E402
from dispatcher.providers.mock.replies import fingerprint  # noqa: E402

WINDOW_S = 60
WORKERS = 4
LATENCY_S = 0.2


def config_for(folder: Path, base: str, *, rpm: int, tpm: int | None, headers: bool,
               urgent_reserve: float = 0.0) -> Path:
    params = {"model": "openai/bench", "api_base": base, "api_key": "sk-bench", "timeout": 30, "rpm": rpm}
    if tpm:
        params["tpm"] = tpm
    path = folder / f"cfg-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "chat", "litellm_params": params}],
        "router_settings": {"num_retries": 5},
        "dispatcher_settings": {
            "database_url": fresh_postgres_schema(), "redis_url": REDIS_URL,
            "namespace": f"bench-{uuid.uuid4().hex[:6]}", "default_model": "chat",
            "rate_limits": {"provider_headers": headers, "urgent_reserve": urgent_reserve},
        },
    }))
    return path


def lines(prefix: str, count: int, priority: int | None = None) -> list[dict]:
    result = []
    for i in range(count):
        line = {"custom_id": f"{prefix}-{i}", "max_tokens": 20,
                "messages": [{"role": "user", "content": f"{prefix} {i} lorem ipsum dolor"}]}
        if priority is not None:
            line["priority"] = priority
        result.append(line)
    return result


def detail(base: str) -> dict:
    return httpx.get(base.removesuffix("/v1") + "/mock/stats", params={"detail": "1"}, timeout=30).json()


def wall_run(folder: Path, headers: bool, jobs: int = 2000, per_window: int = 700) -> dict:
    with mock_provider(rpm=per_window, tpm=per_window * 100, window_s=WINDOW_S,
                       latency_ms=int(LATENCY_S * 1000), jitter_ms=100) as base:
        config = config_for(folder, base, rpm=per_window, tpm=per_window * 100, headers=headers)
        client = Client(config)
        client.database
        workers = [WorkerProcess(config) for _ in range(WORKERS)]
        time.sleep(3)
        started = time.time()
        batch = client.submit(lines("w", jobs))
        info = client.wait(batch.batch_id, timeout=900, poll_interval=0.2)
        stats = detail(base)
        for worker in workers:
            worker.stop()
        client.close()
    last_answer = max(seen for seen in stats["first_seen"].values()) + LATENCY_S
    wall = last_answer - started
    ideal = (jobs - 1) // per_window * WINDOW_S + LATENCY_S
    return {
        "provider_headers": headers, "jobs": jobs, "succeeded": info.succeeded,
        "wall_s": round(wall, 1), "ideal_s": ideal, "ideal_over_wall": round(ideal / wall, 3),
        "requests_seen": stats["requests"], "429s": stats["rate_limited"],
        "peak_requests_in_any_60s": stats["peak_requests_in_window"],
        "peak_tokens_in_any_60s": stats["peak_tokens_in_window"],
    }


def urgent_run(folder: Path, headers: bool, backlog: int, urgent_reserve: float = 0.0,
               per_window: int = 100, urgent: int = 5) -> dict:
    with mock_provider(rpm=per_window, window_s=WINDOW_S, latency_ms=int(LATENCY_S * 1000), jitter_ms=100) as base:
        config = config_for(folder, base, rpm=per_window, tpm=None, headers=headers, urgent_reserve=urgent_reserve)
        client = Client(config)
        client.database
        workers = [WorkerProcess(config) for _ in range(WORKERS)]
        time.sleep(3)
        bulk = client.submit(lines("bulk", backlog), priority=9)
        time.sleep(5)
        waits, ids = [], []
        for i in range(urgent):
            line = lines(f"urgent{i}", 1)
            ids.append(client.submit(line, priority=0).batch_id)
            submitted = time.time()
            key = fingerprint({"messages": line[0]["messages"]})
            deadline = time.time() + 90
            while time.time() < deadline:
                seen = detail(base)["first_seen"]
                if key in seen:
                    waits.append(seen[key] - submitted)
                    break
                time.sleep(0.01)
            else:
                waits.append(float("inf"))
            time.sleep(2)
        stats = detail(base)
        client.cancel(bulk.batch_id)
        for worker in workers:
            worker.stop()
        client.close()
    return {
        "provider_headers": headers, "backlog": backlog, "urgent_reserve": urgent_reserve,
        "urgent_waits_s": [round(w, 3) for w in waits],
        "urgent_wait_median_s": round(statistics.median(waits), 3),
        "bulk_sent_before_cancel": stats["requests"] - urgent, "429s": stats["rate_limited"],
        "peak_requests_in_any_60s": stats["peak_requests_in_window"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["wall", "urgent"], action="append")
    parser.add_argument("--headers", choices=["on", "off", "both"], default="both")
    args = parser.parse_args()
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.headers]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.only or ["wall", "urgent"]:
            for headers in modes:
                if name == "wall":
                    runs = [wall_run(folder, headers)]
                else:
                    runs = [urgent_run(folder, headers, 60), urgent_run(folder, headers, 300)]
                    if headers:
                        runs.append(urgent_run(folder, headers, 300, urgent_reserve=0.1))
                for report in runs:
                    print(json.dumps({"scenario": name, **report}), flush=True)


if __name__ == "__main__":
    main()
