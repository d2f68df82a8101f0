"""What the CLI shows people: batch summaries, tables, and a live progress display.

Everything here writes to stderr except where a command's output is data (ids, JSON, results).
"""

from __future__ import annotations

import csv
import sys
import time
from collections import deque
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from dispatcher.client.batch_info import BatchInfo
from dispatcher.safe_text import printable

# Rich assumes 80 columns when output is not a terminal; tables of ids need more.
PIPE_WIDTH = 200
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else PIPE_WIDTH)
out_console = Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def literal(value: object) -> Text:
    """User-provided text as a rich cell: never read as markup, control characters escaped.

    A batch named ``[/]`` or ``[bold red]`` is shown as it is written (a plain string cell
    would be parsed as markup: the first crashes ``list``, the second restyles it).
    """
    return Text(printable(value))


def format_ts(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else "-"


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def format_cost(info: BatchInfo) -> str:
    text = f"${info.cost:.6f}" if info.cost < 1 else f"${info.cost:,.2f}"
    if info.cost_unknown:
        text += (f" + {info.cost_unknown} calls of UNKNOWN price (not counted; set "
                 "input_cost_per_token/output_cost_per_token for their deployment)")
    return text


def status_text(info: BatchInfo, now: float | None = None) -> str:
    """The status, with the hold when the batch waits for --not-before/--delay."""
    held_until = info.held_until(now)
    if held_until is None:
        return info.status
    wait = held_until - (time.time() if now is None else now)
    return f"{info.status} (held until {format_ts(held_until)}, starts in {format_duration(wait)})"


def metadata_text(metadata: dict | None) -> str:
    return ", ".join(f"{key}={value}" for key, value in (metadata or {}).items())


def route_text(info: BatchInfo) -> str:
    """The route, and for provider-batch how many batches the providers have in which state."""
    if not info.provider_batches:
        return info.via
    states: dict[str, int] = {}
    for part in info.provider_batches:
        states[part["state"]] = states.get(part["state"], 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in states.items())
    count = len(info.provider_batches)
    return f"{info.via} ({count} provider batch{'es' if count != 1 else ''}: {summary})"


def batch_table(info: BatchInfo) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("batch", info.id + (f"  ({info.name})" if info.name else "")),
        ("status", status_text(info)),
        *([("metadata", metadata_text(info.metadata))] if info.metadata else []),
        ("priority", str(info.priority)),
        ("route", route_text(info)),
        ("requests", f"{info.total} total, {info.succeeded} succeeded, {info.failed} failed"
                     + (f", {info.cancelled} cancelled" if info.cancelled else "")
                     + (f", {info.expired} expired" if info.expired else "")),
        ("tokens", f"{info.prompt_tokens:,} prompt + {info.completion_tokens:,} completion"
                   f" = {info.total_tokens:,}"),
        ("cost", format_cost(info)),
        *([("cost estimate", f"${info.estimated_final_cost:,.6f} when every request has run")]
          if info.estimated_final_cost is not None and not info.done else []),
        *([("cost cap", f"${info.max_cost:,.4f} (max_cost)")] if info.max_cost is not None else []),
        ("created", format_ts(info.created_at)),
    ]
    if info.completed_at or info.cancelled_at or info.failed_at or info.expired_at:
        ended = info.completed_at or info.cancelled_at or info.failed_at or info.expired_at
        rows.append(("ended", f"{format_ts(ended)} (took {format_duration(ended - info.created_at)})"))
    if info.input_file:
        rows.append(("input", info.input_file))
    if info.error_message:
        rows.append(("error", info.error_message))
    for key, value in rows:
        table.add_row(key, literal(value))
    return table


def unfinished_text(info: BatchInfo) -> str:
    """'3 failed', plus cancelled and expired counts when there are any."""
    parts = [f"{info.failed} failed"]
    parts += [f"{n} {what}" for n, what in ((info.cancelled, "cancelled"), (info.expired, "expired")) if n]
    return ", ".join(parts)


def batches_table(infos: list[BatchInfo]) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in ("id", "status", "prio", "done/total", "failed", "cancelled/expired", "cost", "created", "name"):
        table.add_column(column)
    for info in infos:
        table.add_row(
            literal(info.id),
            literal(info.status + (" (held)" if info.held_until() is not None else "")),
            str(info.priority),
            f"{info.finished_requests}/{info.total}",
            str(info.failed),
            f"{info.cancelled}/{info.expired}",
            f"${info.cost:.4f}" + (" + unknown" if info.cost_unknown else ""),
            format_ts(info.created_at),
            literal(info.name or ""),
        )
    return table


def keys_table(api_keys: list) -> Table:
    """``keys list``: one row per API key (``dispatcher.keys.ApiKey``) with its limits; no secrets."""
    table = Table(show_edge=False, header_style="bold")
    for column in ("id", "name", "models", "max priority", "max cost", "created", "revoked"):
        table.add_column(column)
    for key in api_keys:
        table.add_row(
            literal(key.id),
            literal(key.name),
            literal(", ".join(key.models) if key.models is not None else "(all)"),
            "-" if key.max_priority is None else str(key.max_priority),
            "-" if key.max_cost is None else f"${key.max_cost:,.2f}",
            format_ts(key.created_at),
            format_ts(key.revoked_at),
        )
    return table


def deployments_table(rows: list[dict]) -> Table:
    """``models``: one row per deployment; live columns when the report has fleet figures."""
    live = any("in_flight" in row for row in rows)
    split = any(row.get("itpm") or row.get("otpm") for row in rows)  # input/output limited apart
    table = Table(show_edge=False, header_style="bold")
    columns = ["group", "deployment", "model", "rpm", "tpm"] + (["itpm", "otpm"] if split else [])
    columns += ["$/1M in", "$/1M out"]
    if live:
        columns += ["req/min now", "tok/min now", "in flight", "paused"]
    columns.append("api_base")
    for column in columns:
        table.add_column(column)
    for row in rows:
        cells = [
            literal(row["group"]), literal(row["deployment"]), literal(row["model"]),
            str(row["rpm"] or "-"), str(row["tpm"] or "-"),
            *([str(row.get("itpm") or "-"), str(row.get("otpm") or "-")] if split else []),
            _per_million(row["input_cost_per_token"]), _per_million(row["output_cost_per_token"]),
        ]
        if live:
            cells += [
                str(row.get("requests_this_minute", "-")), str(row.get("tokens_this_minute", "-")),
                str(row.get("in_flight", "-")),
                f"{row['paused_for_s']:.1f}s" if row.get("paused_for_s") else "-",
            ]
        cells.append(literal(row["api_base"] or "(in-process)"))
        table.add_row(*cells)
    return table


def _per_million(value: float | None) -> str:
    return "unknown" if value is None else f"{value * 1e6:.3f}"


USAGE_CSV_COLUMNS = ["key", "requests", "failures", "cache_hits", "prompt_tokens", "completion_tokens",
                     "total_tokens", "cached_tokens", "cost", "known_cost", "unknown_cost_requests"]


def write_usage_csv(rows: list[dict], by: str, stream: TextIO) -> None:
    """``usage --csv``: a header naming the grouping, then one line per row; unknown cost is empty."""
    writer = csv.writer(stream)
    writer.writerow([by if c == "key" else c for c in USAGE_CSV_COLUMNS])
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in USAGE_CSV_COLUMNS])


def usage_table(rows: list[dict], by: str) -> Table:
    """``usage``: one row per group (deployment, batch, day), cost never shown as free when unknown."""
    table = Table(show_edge=False, header_style="bold")
    for title in (by, "requests", "failures", "cache hits", "prompt tok", "completion tok",
                  "total tok", "cost (USD)", "unknown price"):
        table.add_column(title, justify="left" if title == by else "right")
    for row in rows:
        table.add_row(
            literal(str(row["key"])), f"{row['requests']:,}", f"{row['failures']:,}", f"{row['cache_hits']:,}",
            f"{row['prompt_tokens']:,}", f"{row['completion_tokens']:,}", f"{row['total_tokens']:,}",
            f"{row['known_cost']:.6f}" + (" + unknown" if row["unknown_cost_requests"] else ""),
            str(row["unknown_cost_requests"] or "-"),
        )
    return table


class RateMeter:
    """Requests per second over the last ``window`` seconds of progress samples."""

    def __init__(self, window: float = 15.0):
        self._samples: deque[tuple[float, int]] = deque()
        self._window = window

    def add(self, done: int) -> float | None:
        now = time.monotonic()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self._window:
            self._samples.popleft()
        first_t, first_done = self._samples[0]
        if now - first_t < 0.5:
            return None
        return (done - first_done) / (now - first_t)


class BatchProgress:
    """A live progress bar (terminal) or a line every few seconds (logs, pipes)."""

    PLAIN_EVERY_S = 5.0

    def __init__(self, console: Console = err_console):
        self._console = console
        self._live = console.is_terminal
        self._rate = RateMeter()
        self._progress: Progress | None = None
        self._task = None
        self._last_plain = 0.0

    def __enter__(self) -> "BatchProgress":
        if self._live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA {task.fields[eta]}"),
                TextColumn("{task.fields[failures]}"),
                console=self._console,
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("", total=1, rate="", eta="?", failures="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, info: BatchInfo, note: str = "") -> None:
        done = info.finished_requests
        rate = self._rate.add(done)
        remaining = info.total - done
        eta = format_duration(remaining / rate) if rate else "?"
        if info.done:
            eta = "0s"
        rate_text = f"{rate:,.1f}/s" if rate is not None else ""
        failures = f"[red]{unfinished_text(info)}[/red]" if info.unsuccessful else ""
        description = f"{info.id[:18]} {status_text(info)}" + (f" ({note})" if note else "")
        if self._progress is not None:
            self._progress.update(
                # The description column is markup: notes hold paths and commands to paste.
                self._task, description=escape(printable(description)), total=max(1, info.total),
                completed=done, rate=rate_text, eta=eta, failures=failures,
            )
            return
        now = time.monotonic()
        if info.done or now - self._last_plain >= self.PLAIN_EVERY_S:
            self._last_plain = now
            print(
                printable(
                    f"{info.id} {status_text(info)}: {done}/{info.total} done, {unfinished_text(info)}"
                    + (f", {rate_text}" if rate_text else "")
                    + (f", ETA {eta}" if not info.done else "")
                    + (f" ({note})" if note else "")
                ),
                file=sys.stderr,
                flush=True,
            )
