"""How a batch is submitted: the one definition behind ``Client.submit`` and the CLI's options.

Each field carries its meaning in ``metadata["help"]``; the CLI builds ``--name``-style
options from these fields (``cli.py:submit_options``), so a new option is added here once.
Values are checked and normalized when the object is built: a priority name becomes its
number, a time or a delay becomes Unix seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from dispatcher.durations import parse_duration
from dispatcher.errors import UsageError
from dispatcher.priority import parse_priority
from dispatcher.times import TIME_HELP, parse_time


def _option(help: str, default: Any = None, **shape: Any) -> Any:
    """A field with its help text; ``shape`` holds hints for the command line (``short`` flag,
    ``metavar``, ``positive`` number, ``only_submit``: not an option of ``run``)."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help, **shape})
    return field(default=default, metadata={"help": help, **shape})


# Fair positions are seq / weight (scheduling/fair.py): bounded, they stay finite.
MIN_WEIGHT = 0.001
MAX_WEIGHT = 1000.0


@dataclass
class SubmitOptions:
    """Options of one submitted batch (all optional)."""

    model: str | None = _option("Model group for lines whose body names none.", short="-m")
    priority: int | str | None = _option(
        "0 (most urgent) to 9, or urgent/high/normal/low/bulk. Default: config's default_priority "
        "(5). A line's own 'priority' field wins.", short="-p")
    name: str | None = _option("A name for the batch, shown by list and status.")
    metadata: dict[str, Any] = _option(
        "Metadata stored with the batch (repeatable), like OpenAI's batch metadata.", {},
        metavar="KEY=VALUE")
    skip_invalid: bool = _option(
        "Submit the valid lines and record invalid ones as failed jobs, instead of refusing the "
        "whole input.", False)
    idempotency_key: str | None = _option(
        "If a batch was already submitted with this key, return (print) its id instead of "
        "submitting again.", only_submit=True)
    completion_window: str | None = _option(
        "Jobs not started within this time end 'expired' (e.g. 24h). Default: config.",
        metavar="DURATION")
    weight: float = _option(
        "Share of capacity among batches of the same priority (2 = twice the turns).", 1.0,
        positive=True)
    not_before: float | str | datetime | None = _option(
        f"Hold the batch until TIME: {TIME_HELP}.", metavar="TIME")
    delay: float | str | None = _option(
        "Hold the batch for DURATION (e.g. 10m); instead of --not-before.", metavar="DURATION")
    max_cost: float | None = _option(
        "Cost cap: once spent plus the estimated cost of calls in flight reaches it, no new request "
        "starts; the batch ends 'budget_exceeded'.", metavar="USD", positive=True)
    via: str | None = _option(
        "Route: realtime (calls now, within rate limits), provider-batch (the provider's batch API: "
        "half price, results within 24 h), or auto (provider-batch for low/bulk priority with a "
        "completion window of at least 24h). Default: config's default_via (realtime).",
        metavar="ROUTE")
    cache: bool = _option(
        "Answer requests identical to ones already answered from the response cache (any "
        "temperature), without a provider call.", False)
    # Set by the client from ``cache`` and the config: 0 off, 1 deterministic requests, 2 forced.
    cache_mode: int = field(default=0, metadata={"internal": True})

    def __post_init__(self) -> None:
        # Idempotent: dataclasses.replace() runs this again on normalized values.
        if self.priority is not None:
            try:
                self.priority = parse_priority(self.priority)
            except ValueError as exc:
                raise UsageError(f"--priority: {exc}") from None
        if self.delay is not None:
            if self.not_before is not None:
                raise UsageError("use --not-before or --delay, not both")
            try:
                self.not_before = time.time() + parse_duration(self.delay)
            except ValueError as exc:
                raise UsageError(f"--delay: {exc}") from None
            self.delay = None
        if self.not_before is not None:
            try:
                self.not_before = parse_time(self.not_before)
            except ValueError as exc:
                raise UsageError(f"--not-before: {exc}") from None
        if self.via is not None:
            from dispatcher.remote.route import parse_via

            self.via = parse_via(self.via)
        if self.max_cost is not None and self.max_cost <= 0:
            raise UsageError("max_cost must be positive")
        if self.weight <= 0:
            raise UsageError("weight must be positive")
        if not MIN_WEIGHT <= self.weight <= MAX_WEIGHT:
            raise UsageError(f"weight must be between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}")


def public_fields() -> list:
    """The fields a person sets (everything but what the client derives)."""
    return [f for f in fields(SubmitOptions) if not f.metadata.get("internal")]
