"""Benchmark: CPU cost of scrubbing known secrets from provider answers (``scrub_secrets``).

    python bench/scrub_cost.py

Every successful answer is scrubbed before it is stored (a provider may echo the API key).
Times one call on answers of several sizes, with 1 and with 10 known secrets, when no secret
occurs (every normal answer) and when one does. Prints microseconds per call (best of 5
repeats, to filter out the shared machine's noise).
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dispatcher.config.secrets import remember_secret, scrub_secrets  # noqa: E402


def answer(content_chars: int) -> bytes:
    text = ("lorem ipsum dolor sit amet, consectetur adipiscing elit " * (content_chars // 56 + 1))[:content_chars]
    return orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 50, "total_tokens": 110},
    })


def micros(body: bytes) -> float:
    number = max(200, 2_000_000 // len(body))
    return min(timeit.repeat(lambda: scrub_secrets(body), number=number, repeat=5)) / number * 1e6


def main() -> None:
    keys = [f"sk-bench-{i:02d}-" + "A1b2C3d4" * 6 for i in range(10)]
    print(f"{'answer':>12} {'1 secret':>10} {'10 secrets':>11} {'10, one occurs':>15}  (microseconds per answer)")
    bodies = [answer(chars) for chars in (200, 2_000, 20_000)]
    remember_secret(keys[0])
    one = [micros(body) for body in bodies]
    for key in keys[1:]:
        remember_secret(key)
    ten = [micros(body) for body in bodies]
    hit = [micros(body.replace(b"lorem", keys[5].encode(), 1)) for body in bodies]
    for body, a, b, c in zip(bodies, one, ten, hit):
        print(f"{len(body):>10} B {a:>10.2f} {b:>11.2f} {c:>15.2f}")


if __name__ == "__main__":
    main()
