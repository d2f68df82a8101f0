"""Benchmark: a provider that fails a share of calls, behind one deployment, with defaults.

    python bench/flaky_provider.py [--jobs 1000] [--error-rate 0.3] [--deployments 1] [--runs 1]

Runs ``llm-dispatch run`` (embedded: SQLite, in-process worker) as a user would, with every
router setting at its default, against the mock provider answering ``--error-rate`` of its
calls with 500. Prints the wall time, the cooldowns the worker logged, failed jobs and the
provider's request count. Issue 11, item 9: 30% failures used to cost one cooldown per burst
of failures, each holding back every job of the group.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import mock_provider, provider_stats, reset_provider, write_requests  # noqa: E402

COOLDOWN = re.compile(rb"failed more than \d+ times in a minute: cooling down")


def run_once(base_url: str, jobs: int, deployments: int, folder: Path) -> dict:
    params = {"model": "openai/bench", "api_base": base_url, "api_key": "sk-bench"}
    config = folder / "flaky.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "chat", "litellm_params": dict(params)} for _ in range(deployments)],
        "dispatcher_settings": {"database_url": f"sqlite:///{folder / f'flaky-{time.time_ns()}.db'}",
                                "default_model": "chat"},
    }))
    source = write_requests(folder / "requests.jsonl", jobs)
    reset_provider(base_url)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "cli", "-c", str(config), "run", str(source), "-o", str(folder / "out.jsonl")],
        capture_output=True,
    )
    wall = time.monotonic() - start
    failed = re.findall(rb"(\d+) failed", result.stdout + result.stderr)  # the last: the final count
    return {
        "wall_s": round(wall, 2),
        "cooldowns": len(COOLDOWN.findall(result.stderr)),
        "failed_jobs": int(failed[-1]) if failed else None,
        "provider_requests": provider_stats(base_url)["requests"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--error-rate", type=float, default=0.3)
    parser.add_argument("--deployments", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, mock_provider(error_rate=args.error_rate, seed=7) as base_url:
        for _ in range(args.runs):
            print(run_once(base_url, args.jobs, args.deployments, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
