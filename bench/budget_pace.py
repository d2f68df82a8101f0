"""Benchmark: does a batch with --max-cost run as fast as one without, until the budget binds?

    python bench/budget_pace.py [--runs 3]

``llm-dispatch run`` (embedded: SQLite, the built-in mock provider, 20 +- 10 ms per call) on
200 requests (examples/prompts.jsonl twice), with and without ``--max-cost 2``, for three
prices of the mock deployment (USD per input / output token):

free    0 / 0 (the built-in default): nothing is ever reserved.
low     1e-5 / 1e-4: a call is estimated at about 0.012 USD, so the estimates of about 160 calls
        in flight fill the 2 USD budget; the real spend (0.34 USD) never reaches it.
high    1e-4 / 1e-3: about 16 calls in flight fill the budget, and the spend reaches it after
        about 120 calls (the batch ends budget_exceeded).

Prints the median wall time (and every run's) of each case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PRICES = {"free": (0.0, 0.0), "low": (1e-5, 1e-4), "high": (1e-4, 1e-3)}


def write_input(path: Path) -> Path:
    lines = (REPO / "examples" / "prompts.jsonl").read_text().splitlines()
    with path.open("w") as handle:
        for i in range(200):
            request = json.loads(lines[i % len(lines)])
            request["custom_id"] = f"req-{i}"
            handle.write(json.dumps(request) + "\n")
    return path


def one_run(folder: Path, source: Path, prices: tuple[float, float], budget: list[str]) -> float:
    database = folder / f"pace-{time.time_ns()}.db"
    config = folder / "pace.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "mock", "model_info": {"id": "mock-1"}, "litellm_params": {
            "model": "mock/echo", "mock_latency_ms": 20, "mock_latency_jitter_ms": 10,
            "input_cost_per_token": prices[0], "output_cost_per_token": prices[1]}}],
        "dispatcher_settings": {"default_model": "mock", "database_url": f"sqlite:///{database}"},
    }))
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "cli", "-c", str(config), "run", str(source),
                    "-o", str(folder / "out.jsonl"), *budget], cwd=REPO, capture_output=True)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = write_input(folder / "in.jsonl")
        for name, prices in PRICES.items():
            for budget in ([], ["--max-cost", "2"]):
                if name == "high" and not budget:
                    continue  # the same as "free" without a budget
                times = [one_run(folder, source, prices, budget) for _ in range(args.runs)]
                label = f"{name:5} {' '.join(budget) or 'no budget':12}"
                print(f"{label} median {statistics.median(times):6.2f} s  runs "
                      + " / ".join(f"{t:.2f}" for t in times), flush=True)


if __name__ == "__main__":
    main()
