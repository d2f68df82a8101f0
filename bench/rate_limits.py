"""Benchmark: how close to a provider's rate limits the fleet runs, and how often it hits them.

    python bench/rate_limits.py                     # all scenarios
    python bench/rate_limits.py --only requests     # or tokens, tokenizer, split

The mock provider enforces its limits over a 10-second sliding window and answers 429 beyond
them; the dispatcher is configured with the per-minute equivalents (6x), so this also checks
that a minute's budget is spread evenly (a 10-second window may only see a sixth of it).
4 worker processes share the limits through Redis; provider latency 200 +- 100 ms.

Scenarios:
  requests  one deployment, 600 requests / 60,000 tokens per 10 s; small requests: rpm binds
  tokens    the same limits, requests of ~170 tokens: tpm binds
  tokenizer tpm binds, and the provider bills prompts at 0.6x our estimate (another tokenizer):
            bookings must learn the real count or the schedule runs well below the limit
  split     two deployments in one group (600 and 300 requests per 10 s): the split should
            follow their capacity, the total reach the sum
  anthropic one Claude deployment (anthropic/, the mock's Messages API) with Anthropic's
            separate limits: 600 requests, 30,000 input and 6,000 output tokens per 10 s,
            prompts of ~200 tokens and max_tokens 20: itpm binds (the dispatcher is given
            rpm, itpm and otpm)
Reported per provider: requests admitted per 10-second window in the steady part of the run
(mean and minimum over whole windows strictly inside it), as a fraction of the binding limit,
the peak in any sliding window, and 429s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import yaml  # noqa: E402

from bench.common import REDIS_URL, WorkerProcess, fresh_postgres_schema, mock_provider, write_requests  # noqa: E402
from dispatcher import Client  # noqa: E402

WINDOW_S = 10
WORKERS = 4


def provider_detail(base_url: str) -> dict:
    return httpx.get(base_url.removesuffix("/v1") + "/mock/stats", params={"detail": "1"}, timeout=30).json()


def window_figures(admitted: list[list[float]], limit_requests: int, limit_tokens: int) -> dict:
    """Admissions per whole 10 s window strictly inside the run (ramp-up and tail excluded)."""
    times = [t for t, _ in admitted]
    if not times:
        return {}
    start, end = times[0] + WINDOW_S / 2, times[-1] - WINDOW_S / 2
    counts, tokens = [], []
    edge = start
    while edge + WINDOW_S <= end:
        inside = [(t, k) for t, k in admitted if edge <= t < edge + WINDOW_S]
        counts.append(len(inside))
        tokens.append(sum(k for _, k in inside))
        edge += WINDOW_S
    if not counts:
        return {"note": "run too short for a whole steady window"}
    return {
        "windows": len(counts),
        "requests_per_window_mean": round(sum(counts) / len(counts), 1),
        "requests_per_window_min": min(counts),
        "tokens_per_window_mean": round(sum(tokens) / len(tokens)),
        "request_limit_use": round(sum(counts) / len(counts) / limit_requests, 3),
        "token_limit_use": round(sum(tokens) / len(tokens) / limit_tokens, 3),
    }


def split_figures(stats: dict, spec: dict) -> dict:
    """Anthropic's limits: input and output tokens per whole 10 s window, apart."""
    times = [at for at, _ in stats["admitted_at"]]
    inputs = [pair[0] for pair in stats["admitted_input_output"]]
    by_window = window_figures([[at, tokens] for at, tokens in zip(times, inputs)],
                               spec["rpm_window"], spec["itpm_window"])
    return {
        "limits_per_10s": {"requests": spec["rpm_window"], "input_tokens": spec["itpm_window"],
                           "output_tokens": spec["otpm_window"]},
        "completed": stats["completed"],
        "requests_seen": stats["requests"],
        "429s": stats["rate_limited"],
        "peak_input_tokens_in_any_10s": stats["peak_input_tokens_in_window"],
        "peak_output_tokens_in_any_10s": stats["peak_output_tokens_in_window"],
        "windows": by_window.get("windows"),
        "requests_per_window_mean": by_window.get("requests_per_window_mean"),
        "input_tokens_per_window_mean": by_window.get("tokens_per_window_mean"),
        "input_limit_use": by_window.get("token_limit_use"),
        "request_limit_use": by_window.get("request_limit_use"),
    }


def run_scenario(name: str, deployments: list[dict], jobs: int, max_tokens: int, prompt_chars: int) -> dict:
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        providers = []
        model_list = []
        for i, spec in enumerate(deployments):
            split = spec.get("itpm_window") is not None
            limits = {name: spec[f"{name}_window"] for name in ("rpm", "tpm", "itpm", "otpm")
                      if spec.get(f"{name}_window") is not None}
            base = stack.enter_context(mock_provider(
                **limits, window_s=WINDOW_S, latency_ms=200, jitter_ms=100, seed=i,
                prompt_token_scale=spec.get("prompt_token_scale", 1.0),
            ))
            providers.append((base, spec))
            per_minute = {name: spec[f"{name}_window"] * 60 // WINDOW_S
                          for name in ("rpm", "tpm", "itpm", "otpm") if spec.get(f"{name}_window")}
            params = ({"model": "anthropic/claude-haiku-4-5", "api_base": base.removesuffix("/v1")} if split
                      else {"model": "openai/bench", "api_base": base})
            model_list.append({"model_name": "chat", "litellm_params": {
                **params, "api_key": "sk-bench", "timeout": 30, **per_minute,
            }, "model_info": {"id": f"deployment-{i}"}})
        config = folder / "bench.yaml"
        config.write_text(yaml.safe_dump({
            "model_list": model_list,
            "router_settings": {"num_retries": 5},
            "dispatcher_settings": {
                "database_url": fresh_postgres_schema(), "redis_url": REDIS_URL,
                "namespace": f"bench-{uuid.uuid4().hex[:6]}", "default_model": "chat",
            },
        }))
        source = write_requests(folder / "requests.jsonl", jobs, prompt_chars=prompt_chars, max_tokens=max_tokens)
        client = Client(config)
        client.database
        workers = [WorkerProcess(config) for _ in range(WORKERS)]
        time.sleep(3)
        start = time.monotonic()
        batch = client.submit(source)
        info = client.wait(batch.batch_id, timeout=900, poll_interval=0.5)
        wall = time.monotonic() - start
        for worker in workers:
            worker.stop()
        client.close()
        report = {"scenario": name, "jobs": jobs, "succeeded": info.succeeded, "wall_s": round(wall, 1), "providers": []}
        total_requests = 0
        for base, spec in providers:
            stats = provider_detail(base)
            total_requests += stats["requests"]
            if spec.get("itpm_window") is not None:
                report["providers"].append(split_figures(stats, spec))
                continue
            report["providers"].append({
                "limits_per_10s": {"requests": spec["rpm_window"], "tokens": spec["tpm_window"]},
                "completed": stats["completed"],
                "requests_seen": stats["requests"],
                "429s": stats["rate_limited"],
                "peak_requests_in_any_10s": stats["peak_requests_in_window"],
                "peak_tokens_in_any_10s": stats["peak_tokens_in_window"],
                **window_figures(stats["admitted_at"], spec["rpm_window"], spec["tpm_window"]),
            })
        report["429_fraction"] = round(sum(p["429s"] for p in report["providers"]) / max(1, total_requests), 4)
        if len(providers) > 1:
            means = [p.get("requests_per_window_mean", 0) for p in report["providers"]]
            limits = [spec["rpm_window"] for _, spec in providers]
            report["total_requests_per_window_mean"] = round(sum(means), 1)
            report["total_limit_use"] = round(sum(means) / sum(limits), 3)
            report["split"] = [round(m / sum(means), 3) for m in means]
            report["capacity_split"] = [round(limit / sum(limits), 3) for limit in limits]
        return report


SCENARIOS = {
    "requests": lambda jobs: run_scenario(
        "requests", [{"rpm_window": 600, "tpm_window": 60000}], jobs, max_tokens=50, prompt_chars=40),
    "tokens": lambda jobs: run_scenario(
        "tokens", [{"rpm_window": 600, "tpm_window": 60000}], jobs * 2 // 3, max_tokens=150, prompt_chars=60),
    "tokenizer": lambda jobs: run_scenario(
        "tokenizer", [{"rpm_window": 600, "tpm_window": 60000, "prompt_token_scale": 0.6}],
        jobs * 2 // 3, max_tokens=50, prompt_chars=400),
    "split": lambda jobs: run_scenario(
        "split", [{"rpm_window": 600, "tpm_window": 60000}, {"rpm_window": 300, "tpm_window": 30000}],
        jobs * 3 // 2, max_tokens=50, prompt_chars=40),
    "anthropic": lambda jobs: run_scenario(
        "anthropic", [{"rpm_window": 600, "itpm_window": 30000, "otpm_window": 6000}],
        jobs * 2 // 5, max_tokens=20, prompt_chars=800),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--only", choices=list(SCENARIOS), action="append")
    args = parser.parse_args()
    for name in args.only or list(SCENARIOS):
        print(json.dumps(SCENARIOS[name](args.jobs), indent=2), flush=True)


if __name__ == "__main__":
    main()
