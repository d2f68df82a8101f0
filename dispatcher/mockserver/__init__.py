"""The project's HTTP mock LLM provider: an OpenAI-compatible server for tests and benchmarks.

    python -m dispatcher.mockserver [--host 127.0.0.1] [--port 0] [--port-file PATH]
        [--latency-ms MS] [--jitter-ms MS] [--api-key KEY]
        [--rpm N] [--tpm N] [--window-s S]
        [--error-rate F] [--hang-rate F] [--hang-s S] [--seed N] [--verbose]

The same options are fields of ``app.MockOptions``; ``app.create_app(options)`` (or
``create_app(rpm=3, ...)``) builds the aiohttp application for use in-process.

Routes:

``POST /v1/chat/completions``, ``POST /chat/completions``
    The built-in mock provider's reply (``providers/mock/replies.py``: deterministic text,
    estimated usage, ``[[mock:...]]`` directives for scripted failures), with a unique
    ``x-request-id``. ``[[mock:fail_first=N]]`` makes the first N admitted tries of a prompt
    (same messages, same fingerprint) answer 500; ``[[mock:echo_key]]`` answers 200 with the
    Authorization header it received quoted in the reply. Non-JSON bodies, or bodies without a
    non-empty ``messages`` array, get 400.
``GET /mock/stats[?detail=1]``, ``POST /mock/reset``, ``GET /health``
    Counters (see ``stats.py``), clearing them, liveness.

What happens to a chat request, in order:

1. ``--api-key``: without ``Authorization: Bearer KEY``, 401 ``invalid_api_key`` whose message
   echoes the full key received (some providers do; the dispatcher must redact it).
2. ``--rpm`` / ``--tpm`` over a sliding window of ``--window-s`` seconds: a request that would
   not fit gets 429 ``rate_limit_exceeded`` with ``retry-after`` (whole seconds, rounded up),
   ``retry-after-ms`` (the time until enough of the window has expired for it to fit) and
   ``x-ratelimit-*`` headers; refused requests are not counted in the window. A request is
   charged its prompt estimate plus the completion tokens it allows (``max_completion_tokens``
   or ``max_tokens``, times ``n``), or, without such a limit, the completion tokens of its reply.
   Admitted answers carry the ``x-ratelimit-*`` headers too when a limit is set.
3. ``fail_first``, then ``--error-rate`` (500 ``server_error``), then ``--hang-rate`` (wait
   ``--hang-s`` seconds, then answer normally; the client is expected to time out first).
4. Latency: uniform in ``[latency - jitter, latency + jitter]`` ms, at least 0, plus any
   ``[[mock:sleep=S]]``; then the answer. Auth failures, bad bodies and 429s are immediate.

Quiet by default (``--verbose`` logs each request); stops cleanly on SIGTERM or SIGINT, giving
calls in flight a second to finish.
"""
