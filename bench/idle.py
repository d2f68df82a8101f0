"""Benchmark: what an idle worker costs, and how fast it wakes for an urgent job.

    python bench/idle.py                      # 60 s of idle CPU, 10 s of Redis traffic, 5 wake-ups
    python bench/idle.py --seconds 30 --wakeups 10 --runs 3

One worker process (PostgreSQL + Redis, the mock provider at latency 0) with no jobs:

idle CPU        the worker's user + system CPU over ``--seconds`` (/proc/<pid>/stat), as a
                percentage of one core.
Redis commands  ``MONITOR`` for ``--monitor-seconds``, counting only commands on the Redis
                database the worker alone uses (``--redis-db``), so other clients of the
                same server are not counted; per second, and by command name.
urgent wake-up  a one-line batch at priority 0 submitted to the idle worker (``Client.submit``),
                ``--wakeups`` times, 3-5 s apart so the worker is idle again each time: the time
                from ``submit`` returning (its jobs are in SQL and the wake message is sent) to
                the provider receiving the call, and from the start of ``submit``.
The machine may be shared: quote medians and compare runs made back to back.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import select
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import redis  # noqa: E402

from bench.common import (  # noqa: E402
    REDIS_URL,
    WorkerProcess,
    fresh_postgres_schema,
    mock_provider,
    process_cpu,
    write_config,
)
from dispatcher import Client  # noqa: E402
from dispatcher.providers.mock.replies import fingerprint  # noqa: E402

STARTUP_S = 5.0  # imports, registration and the first polls are not idle cost
MONITOR_LINE = re.compile(r'^\+[\d.]+ \[(?P<db>\d+) (?P<client>\S+)\] "(?P<command>[^"]+)"')


def redis_url_for_db(db: int) -> str:
    return REDIS_URL.rsplit("/", 1)[0] + f"/{db}"


def idle_cpu_percent(pid: int, seconds: float) -> float:
    before, start = process_cpu(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (process_cpu(pid) - before) / (time.monotonic() - start)


def redis_commands(db: int, seconds: float) -> collections.Counter:
    """Commands run on database ``db`` while MONITOR watched for ``seconds`` (those run by
    Lua scripts are named ``lua:NAME``). A raw socket: redis-py drops a MONITOR connection
    on its first read timeout, and an idle worker may send nothing for seconds."""
    url = urlparse(REDIS_URL)
    counts: collections.Counter = collections.Counter()
    buffer = b""
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379)) as conn:
        conn.sendall(b"MONITOR\r\n")
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([conn], [], [], left)[0]:
                break
            buffer += conn.recv(1 << 16)
            *lines, buffer = buffer.split(b"\r\n")
            for line in lines:  # +1712345678.123 [13 127.0.0.1:5555] "EVALSHA" "..."
                match = MONITOR_LINE.match(line.decode(errors="replace"))
                if match and int(match["db"]) == db:
                    name = match["command"].upper()
                    counts[f"lua:{name}" if match["client"] == "lua" else name] += 1
    return counts


def drop_keys(db: int, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url_for_db(db))
    for key in client.scan_iter(match=f"{namespace}*", count=1000):
        client.delete(key)
    client.close()


def first_seen(base_url: str) -> dict[str, float]:
    response = httpx.get(base_url.removesuffix("/v1") + "/mock/stats", params={"detail": "1"}, timeout=30)
    return response.json()["first_seen"]


def urgent_wakeup(client: Client, base_url: str, tag: str) -> tuple[float, float]:
    """(ms from submit returning, ms from submit starting) to the provider receiving the call."""
    messages = [{"role": "user", "content": f"urgent {tag}"}]
    key = fingerprint({"messages": messages})
    started = time.time()
    client.submit([{"custom_id": tag, "messages": messages, "max_tokens": 5}], priority=0)
    returned = time.time()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = first_seen(base_url).get(key)
        if seen is not None:
            return 1000 * (seen - returned), 1000 * (seen - started)
        time.sleep(0.01)
    raise RuntimeError("the urgent job did not reach the provider in 30 s")


def one_run(base_url: str, folder: Path, args: argparse.Namespace) -> dict:
    namespace = f"bench-idle-{uuid.uuid4().hex[:6]}"
    config = write_config(
        folder, base_url, database_url=fresh_postgres_schema(), redis_url=redis_url_for_db(args.redis_db),
        namespace=namespace,
    )
    client = Client(config)
    client.database  # migrate before the worker starts
    worker = WorkerProcess(config)
    try:
        time.sleep(STARTUP_S)
        cpu_percent = idle_cpu_percent(worker.process.pid, args.seconds)
        commands = redis_commands(args.redis_db, args.monitor_seconds)
        wakeups = []
        for i in range(args.wakeups):
            time.sleep(random.uniform(3.0, 5.0))
            wakeups.append(urgent_wakeup(client, base_url, f"{uuid.uuid4().hex[:8]}-{i}"))
    finally:
        _, log = worker.stop()
        client.close()
        drop_keys(args.redis_db, namespace)
    total = sum(commands.values())
    sent = sum(n for name, n in commands.items() if not name.startswith("lua:"))
    return {
        "idle_cpu_percent_of_core": round(cpu_percent, 3),
        "redis_commands_per_s": round(total / args.monitor_seconds, 2),
        "redis_commands_sent_per_s": round(sent / args.monitor_seconds, 2),
        "redis_commands_by_name": dict(commands.most_common()),
        "urgent_wakeup_ms_after_submit": [round(after, 1) for after, _ in wakeups],
        "urgent_wakeup_ms_from_submit_start": [round(start, 1) for _, start in wakeups],
        "urgent_wakeup_ms_after_submit_median": round(statistics.median(a for a, _ in wakeups), 1),
        "worker_log_tail": log[-500:] if "Traceback" in log else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="idle CPU window")
    parser.add_argument("--monitor-seconds", type=float, default=10.0, help="Redis MONITOR window")
    parser.add_argument("--wakeups", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--redis-db", type=int, default=13, help="a Redis database no other client uses")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, mock_provider() as base_url:
        runs = [one_run(base_url, Path(tmp), args) for _ in range(args.runs)]
    report = {"runs": runs}
    if args.runs > 1:
        report["median"] = {
            key: statistics.median(run[key] for run in runs)
            for key in ("idle_cpu_percent_of_core", "redis_commands_per_s", "urgent_wakeup_ms_after_submit_median")
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
