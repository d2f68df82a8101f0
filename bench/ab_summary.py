"""Medians per side of the A/B outputs written by bench/ab.sh.

    python bench/ab_summary.py [/tmp/llmd-ab]

Reads <bench>-<side>-<n>.txt (bench: throughput, rate_limits, priority; side: old, new),
each the JSON the bench script printed (rate_limits prints one JSON document per scenario).
Prints, per figure of docs/benchmarks.md: every run of each side in run order, the medians,
and new/old. A run whose output does not parse is listed as failed, not silently dropped.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

NAME = re.compile(r"^(?P<bench>throughput|rate_limits|priority)-(?P<side>old|new)-(?P<n>\d+)\.txt$")
URGENT_VARIANTS = {
    "urgent_with_priority": "urgent p0, Client.submit",
    "urgent_with_priority_cli": "urgent p0, llm-dispatch submit",
    "urgent_priorities_ignored_fair_share": "p9, fair share",
    "urgent_priorities_ignored_fifo": "p9, fair_share false (FIFO)",
}


def json_documents(text: str) -> list[dict]:
    """Every top-level JSON object in the text, in order (anything between them is skipped)."""
    decoder, documents, position = json.JSONDecoder(), [], 0
    while (start := text.find("{", position)) != -1:
        document, position = decoder.raw_decode(text, start)
        documents.append(document)
    return documents


def throughput_figures(documents: list[dict]) -> dict[str, float]:
    report = documents[0]
    distributed = report["a_distributed_latency0"]["median"]
    embedded = report["a_embedded_latency0"]["median"]
    return {
        "distributed: worker CPU ms/job (during batch)": distributed["worker_cpu_ms_per_job"],
        "distributed: jobs/s": distributed["jobs_per_s"],
        "distributed: worker CPU s whole life": distributed["worker_cpu_s_whole_life"],
        "embedded: process CPU ms/job": embedded["process_cpu_ms_per_job"],
        "embedded: jobs/s": embedded["jobs_per_s"],
    }


def rate_limit_figures(documents: list[dict]) -> dict[str, float]:
    figures = {}
    for scenario in documents:
        name = scenario["scenario"]
        providers = scenario["providers"]
        if len(providers) > 1:
            figures[f"{name}: use of the summed request limit"] = scenario["total_limit_use"]
            for i, share in enumerate(scenario["split"]):
                figures[f"{name}: share of deployment {i}"] = share
        else:
            only = providers[0]
            # The binding limit is the one the run comes closest to.
            figures[f"{name}: use of binding limit"] = max(only["request_limit_use"], only["token_limit_use"])
            figures[f"{name}: tokens per 10 s (mean)"] = only["tokens_per_window_mean"]
            figures[f"{name}: requests per 10 s (mean)"] = only["requests_per_window_mean"]
        figures[f"{name}: 429s"] = sum(p["429s"] for p in providers)
        figures[f"{name}: succeeded of jobs"] = scenario["succeeded"] / scenario["jobs"]
    return figures


def priority_figures(documents: list[dict]) -> dict[str, float]:
    report = documents[0]
    figures = {}
    for key, label in URGENT_VARIANTS.items():
        if key in report:
            figures[f"{label}: p95 s"] = report[key]["wait_p95_s"]
            figures[f"{label}: p50 s"] = report[key]["wait_p50_s"]
            figures[f"{label}: calls moved ahead"] = report[key]["calls_moved_ahead"]
    return figures


PARSERS = {"throughput": throughput_figures, "rate_limits": rate_limit_figures, "priority": priority_figures}


def collect(folder: Path):
    """{bench: {figure: {side: [values in run order]}}}, and the files that did not parse."""
    values = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    failed = []
    runs = [(NAME.match(p.name), p) for p in folder.iterdir()]
    runs = sorted(((m, p) for m, p in runs if m), key=lambda run: (run[0]["bench"], int(run[0]["n"])))
    for match, path in runs:
        try:
            figures = PARSERS[match["bench"]](json_documents(path.read_text()))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            failed.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        for figure, value in figures.items():
            values[match["bench"]][figure][match["side"]].append(value)
    return values, failed


def number(value: float) -> str:
    return f"{value:g}" if isinstance(value, int) or abs(value) >= 100 else f"{value:.3f}"


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/llmd-ab")
    values, failed = collect(folder)
    for bench in PARSERS:
        if bench not in values:
            continue
        print(f"## {bench}")
        print(f"{'figure':52} | {'old runs':24} | {'old med':>8} | {'new runs':24} | {'new med':>8} | new/old")
        for figure, sides in values[bench].items():
            old, new = sides.get("old", []), sides.get("new", [])
            old_median = statistics.median(old) if old else None
            new_median = statistics.median(new) if new else None
            ratio = f"{new_median / old_median:.3f}" if old_median and new_median is not None else "-"
            print(f"{figure:52} | {' / '.join(map(number, old)):24} | "
                  f"{number(old_median) if old else '-':>8} | {' / '.join(map(number, new)):24} | "
                  f"{number(new_median) if new else '-':>8} | {ratio}")
        print()
    if failed:
        print("## runs whose output did not parse (see the .err file next to each)")
        print("\n".join(failed))


if __name__ == "__main__":
    main()
