"""The project's HTTP mock LLM provider: OpenAI, Azure OpenAI and Anthropic APIs, no keys needed.

    python -m dispatcher.mockserver [--host 127.0.0.1] [--port 0] [--port-file PATH]
        [--latency-ms MS] [--jitter-ms MS] [--api-key KEY]
        [--rpm N] [--tpm N] [--itpm N] [--otpm N] [--window-s S]
        [--error-rate F] [--overload-rate F] [--hang-rate F] [--hang-s S] [--seed N] [--verbose]
        [--batch-delay-s S] [--batch-line-error-rate F] [--batch-expire]
        [--batch-max-lines N] [--batch-max-bytes N]

The same options are fields of ``options.MockOptions``; ``app.create_app(options)`` (or
``create_app(rpm=3, ...)``) builds the aiohttp application for use in-process.

Routes (each has its counters under ``by_route`` in the stats):

``POST /v1/chat/completions``, ``POST /chat/completions`` (``openai.chat``)
    The built-in mock provider's reply (``providers/mock/replies.py``: deterministic text,
    estimated usage, ``[[mock:...]]`` directives for scripted failures), with a unique
    ``x-request-id``. ``[[mock:fail_first=N]]`` makes the first N admitted tries of a prompt
    (same messages, same fingerprint) answer 500; ``[[mock:echo_key]]`` answers 200 with the
    Authorization header it received quoted in the reply. Non-JSON bodies, or bodies without a
    non-empty ``messages`` array, get 400.
``POST /v1/embeddings``, ``POST /embeddings`` (``openai.embeddings``)
    Deterministic unit vectors (``embeddings.py``).
``POST /v1/messages``, ``POST /v1/v1/messages`` (``anthropic.messages``)
    Anthropic's Messages API, checked strictly (``anthropic_api.py``).
``POST /openai/deployments/{deployment}/chat/completions|embeddings?api-version=V``
(``azure.chat``, ``azure.embeddings``), ``POST /openai/v1/chat/completions|embeddings``
(``azure.v1.chat``, ``azure.v1.embeddings``)
    Azure OpenAI's URLs, ``api-key`` header and error shapes (``azure.py``).
``POST|GET /v1/files``, ``GET|DELETE /v1/files/{id}``, ``GET /v1/files/{id}/content``
    OpenAI's Files API, in memory (``openai_files.py``).
``POST|GET /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``
    OpenAI's Batches API over uploaded files (``openai_batches.py``): the input checked as
    OpenAI checks it, each line answered as its endpoint's route would answer it.
``/openai/files...``, ``/openai/batches...`` (with ``api-version``), ``/openai/v1/files...``,
``/openai/v1/batches...``
    The same, as Azure OpenAI serves them: its key header and errors, lines for
    ``/chat/completions`` and ``/embeddings``.
``POST|GET /v1/messages/batches``, ``GET|DELETE /v1/messages/batches/{id}``, ``POST .../{id}/cancel``,
``GET .../{id}/results``
    Anthropic's Message Batches API (``anthropic_batches.py``), each request checked and
    answered as ``/v1/messages`` would.
``GET /mock/stats[?detail=1]``, ``POST /mock/reset``, ``GET /health``
    Counters (see ``stats.py``; batch uploads, creations and lines under ``batches``),
    clearing them, liveness.

Batches are answered when created and revealed by the clock (``batch_clock.py``): they end
``--batch-delay-s`` seconds later (OpenAI: validating -> in_progress -> finalizing ->
completed; Anthropic: in_progress -> ended), lines finishing at an even pace in between.
``--batch-line-error-rate`` fails that fraction of lines (500 or 429), ``--batch-expire`` ends
every batch expired with half its lines done, a cancel keeps the lines done by then. Limits:
``--batch-max-lines`` / ``--batch-max-bytes`` (default the providers': OpenAI 50,000 lines and
200 MB, the batch then ``failed``; Anthropic 100,000 requests and 256 MB, refused with 400 or
413). Batch traffic goes through none of the steps below (no rate limits, faults or latency)
and is not counted in ``requests``; files and batches survive ``/mock/reset``.

What happens to a provider call, in order (``pipeline.py``):

1. The key, in each API's own header (``Authorization: Bearer``, Azure's ``api-key``,
   Anthropic's ``x-api-key``); with ``--api-key`` it must be that key. OpenAI's 401
   ``invalid_api_key`` echoes the full key received (some providers do; the dispatcher must
   redact it). Then the URL and the body, in the API's own words.
2. ``--rpm`` / ``--tpm`` / ``--itpm`` / ``--otpm`` over a sliding window of ``--window-s``
   seconds: a request that would not fit gets 429 with ``retry-after`` (whole seconds, rounded
   up) and the API's rate-limit headers (OpenAI and Azure: ``retry-after-ms`` and
   ``x-ratelimit-*``; Anthropic: ``anthropic-ratelimit-*``); refused requests are not counted
   in the window. tpm charges the prompt estimate plus the completion tokens the request allows
   (``max_completion_tokens`` or ``max_tokens``, times ``n``), or, without such a limit, the
   completion tokens of its reply; itpm the input tokens (Anthropic: cache reads excluded);
   otpm the completion budget while the call is in flight and the reply's output tokens after.
   Admitted answers carry the rate-limit headers too when a limit is set.
3. ``fail_first``, then ``--error-rate`` (500), then ``--overload-rate`` (Anthropic 529
   ``overloaded_error``, OpenAI and Azure 503), then ``--hang-rate`` (wait ``--hang-s`` seconds,
   then answer normally; the client is expected to time out first).
4. Latency: uniform in ``[latency - jitter, latency + jitter]`` ms, at least 0, plus any
   ``[[mock:sleep=S]]``; then the answer. Auth failures, bad requests and 429s are immediate.

Quiet by default (``--verbose`` logs each request); stops cleanly on SIGTERM or SIGINT, giving
calls in flight a second to finish.
"""
