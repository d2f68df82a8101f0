"""The project's HTTP mock LLM provider: an OpenAI-compatible server for tests and benchmarks.

    python -m dispatcher.mockserver --port 8000 --latency-ms 200 --jitter-ms 100 \\
        --rpm 600 --tpm 60000 --window-s 10 --error-rate 0.1 --hang-rate 0.02

Replies are the built-in mock provider's (``providers/mock/replies.py``: deterministic text,
estimated usage, ``[[mock:...]]`` directives for scripted failures). On top of that it can
require an API key (401 otherwise, echoing the key it got, as some providers do), enforce
rpm/tpm over a sliding window (429 with Retry-After and x-ratelimit-* headers), inject 500s
and hangs, and it counts everything it sees: ``GET /mock/stats``, ``POST /mock/reset``.
"""
