"""The mock provider's options: one field per command-line flag (``--latency-ms`` ...)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class MockOptions:
    """How the mock provider behaves; the CLI flags, one field each (``--latency-ms`` ...)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: the OS picks a free port
    port_file: str | None = None  # written (atomically) with the bound port once listening
    latency_ms: float = 0.0
    jitter_ms: float = 0.0  # latency is uniform in [latency - jitter, latency + jitter], >= 0
    api_key: str | None = None  # when set, every route requires this key (in its own header)
    rpm: int | None = None  # requests admitted per sliding window
    tpm: int | None = None  # tokens (prompt + completion budget) admitted per sliding window
    itpm: int | None = None  # input tokens admitted per sliding window
    otpm: int | None = None  # output tokens per sliding window (max_tokens while in flight)
    window_s: float = 60.0
    error_rate: float = 0.0  # fraction of admitted requests answered 500
    overload_rate: float = 0.0  # fraction answered "overloaded" (Anthropic 529, OpenAI 503)
    hang_rate: float = 0.0  # fraction of admitted requests that wait hang_s first
    hang_s: float = 3600.0
    seed: int | None = None  # for the error, overload, hang and jitter draws
    verbose: bool = False  # log every request
    prompt_token_scale: float = 1.0  # bill prompts at this multiple of our estimate (a tokenizer)
    # Batches (OpenAI Files + Batches, Anthropic Message Batches): how long one takes to end,
    # the fraction of its lines that fail (500 or 429), whether it expires instead, and the
    # size limits (None: the provider's own, 50,000 lines / 200 MB and 100,000 / 256 MB).
    batch_delay_s: float = 2.0
    batch_line_error_rate: float = 0.0
    batch_expire: bool = False
    batch_max_lines: int | None = None
    batch_max_bytes: int | None = None
    # Seconds between doing an upload or a batch creation and answering it: the window in
    # which a test kills the caller, whose upload or batch then exists without it knowing.
    upload_reply_delay_s: float = 0.0
    create_reply_delay_s: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append("port must be in 0..65535")
        for name in ("latency_ms", "jitter_ms", "hang_s", "batch_delay_s", "upload_reply_delay_s",
                     "create_reply_delay_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        for name in ("error_rate", "overload_rate", "hang_rate", "batch_line_error_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be between 0 and 1")
        for name in ("rpm", "tpm", "itpm", "otpm", "batch_max_lines", "batch_max_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be at least 1")
        if not self.window_s > 0:
            problems.append("window_s must be positive")
        if not self.prompt_token_scale > 0:
            problems.append("prompt_token_scale must be positive")
        if problems:
            raise ValueError("; ".join(problems))

    def public(self) -> dict[str, Any]:
        """The options as shown by /mock/stats (never the key)."""
        shown = asdict(self)
        shown["api_key"] = "(set)" if self.api_key else None
        return shown
