"""OpenAI's Batches API as the mock speaks it: create, retrieve, list, cancel.

``POST /v1/batches`` reads the uploaded input file (``openai_files.py``) and checks it as
OpenAI does: JSONL, a unique ``custom_id`` per line, ``method`` POST, ``url`` equal to the
batch's ``endpoint`` (``/v1/chat/completions`` or ``/v1/embeddings``), at most 50,000 lines
and 200 MB (``--batch-max-lines``, ``--batch-max-bytes``). A file that fails the check makes
a batch that ends ``failed`` with ``errors.data`` naming the lines.

Each line is answered when the batch is created, by the same code as the realtime route
(``ChatCompletions.plan_body``, ``Embeddings.plan_body``); ``--batch-line-error-rate`` turns
that fraction into 500 or 429 answers. The clock (``batch_clock.py``) then reveals them:
validating -> in_progress -> finalizing -> completed after ``--batch-delay-s``, with an output
file (200 answers) and an error file (the others); ``--batch-expire`` ends it ``expired`` with
half its lines done and the rest ``batch_expired`` in the error file; a cancel goes
cancelling -> cancelled keeping the lines done by then.

Azure OpenAI's batches use the same handlers (``add_routes`` with Azure's shape and its
operations, whose line ``url`` is ``/chat/completions`` or ``/embeddings``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from dispatcher.mockserver.batch_clock import DAY_S, FINALIZING_SHARE, VALIDATING_SHARE, BatchClock
from dispatcher.mockserver.openai_api import ChatCompletions, Embeddings
from dispatcher.mockserver.openai_api import OpenAIShape
from dispatcher.mockserver.openai_files import (
    FILES, SHAPE, SHAPE_KEY, FileStore, bad_request, bind, lookup, not_found, refused, shape_of,
)
from dispatcher.mockserver.pipeline import JSON, Plan, read_json_object, respond
from dispatcher.mockserver.state import STATE, MockState
from dispatcher.providers.mock.replies import error_body

MAX_LINES = 50_000
YIELD_EVERY = 1000  # lines answered between yields to the event loop
MAX_BYTES = 200 * 1024 * 1024
MAX_LISTED_ERRORS = 100  # a file with thousands of bad lines names the first ones
OPERATIONS = {"/v1/chat/completions": ChatCompletions(SHAPE), "/v1/embeddings": Embeddings(SHAPE)}
EXPIRED_ERROR = {"code": "batch_expired",
                 "message": "This request could not be executed before the completion window expired."}
ACTIVE = ("validating", "in_progress", "finalizing")
OPERATIONS_KEY = "mock_batch_operations"  # request key: the endpoints a route's batches take


def operations_of(request: web.Request) -> dict[str, Any]:
    return request.get(OPERATIONS_KEY, OPERATIONS)


@dataclass(slots=True)
class LineAnswer:
    """What one line got: the realtime route's answer (or an injected failure)."""

    custom_id: str
    status: int
    body: bytes
    json_body: bool
    request_id: str
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class OpenAIBatch:
    id: str
    endpoint: str
    input_file_id: str
    metadata: dict[str, str] | None
    model: str | None
    clock: BatchClock
    answers: list[LineAnswer]
    errors: list[dict[str, Any]] | None  # the input file's problems: the batch fails
    output_file_id: str | None = None
    error_file_id: str | None = None
    written: bool = False
    # Running totals over the lines in order, so a read of a 50,000-line batch is O(1).
    _ok: array = field(default_factory=lambda: array("q", [0]))
    _input: array = field(default_factory=lambda: array("q", [0]))
    _output: array = field(default_factory=lambda: array("q", [0]))

    def __post_init__(self) -> None:
        for answer in self.answers:
            self._ok.append(self._ok[-1] + (answer.status == 200))
            self._input.append(self._input[-1] + answer.input_tokens)
            self._output.append(self._output[-1] + answer.output_tokens)

    def status(self, now: float) -> str:
        clock = self.clock
        share = clock.elapsed(now) / clock.delay_s if clock.delay_s > 0 else 1.0
        if self.errors is not None:
            return "validating" if share < VALIDATING_SHARE else "failed"
        if clock.cancelled_at is not None:
            return "cancelled" if clock.ended(now) else "cancelling"
        if clock.ended(now):
            return "expired" if clock.expire else "completed"
        if share < VALIDATING_SHARE:
            return "validating"
        return "in_progress" if share < 1 - FINALIZING_SHARE else "finalizing"

    def done(self, now: float) -> int:
        if self.errors is not None:
            return 0
        return self.clock.done(now, working_from=VALIDATING_SHARE, working_until=1 - FINALIZING_SHARE)

    def view(self, now: float, files: FileStore) -> dict[str, Any]:
        """The Batch object as OpenAI returns it; ending writes the output and error files once."""
        status = self.status(now)
        clock = self.clock
        done = self.done(now)
        ended = status in ("completed", "expired", "cancelled")
        if ended and not self.written:
            self._write_files(status, done, files)
        succeeded = self._ok[done]
        failed = done - succeeded + (len(self.answers) - done if status == "expired" else 0)
        at = clock.started
        horizon = min(now, clock.cancelled_at) if clock.cancelled_at is not None else now
        in_progress_at = at + clock.delay_s * VALIDATING_SHARE
        finalizing_at = at + clock.delay_s * (1 - FINALIZING_SHARE)

        def stamp(instant: float | None, reached: bool = True) -> int | None:
            return clock.unix(instant) if instant is not None and reached else None

        view = {
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "model": self.model,
            "errors": {"object": "list", "data": self.errors} if self.errors is not None else None,
            "input_file_id": self.input_file_id, "completion_window": "24h", "status": status,
            "output_file_id": self.output_file_id, "error_file_id": self.error_file_id,
            "created_at": clock.unix(at),
            "in_progress_at": stamp(in_progress_at, self.errors is None and horizon >= in_progress_at),
            "expires_at": clock.unix(at) + DAY_S,
            "finalizing_at": stamp(finalizing_at, clock.cancelled_at is None and self.errors is None
                                   and horizon >= finalizing_at),
            "completed_at": stamp(clock.ends_at(), status == "completed"),
            "failed_at": stamp(at + clock.delay_s * VALIDATING_SHARE, status == "failed"),
            "expired_at": stamp(clock.ends_at(), status == "expired"),
            "cancelling_at": stamp(clock.cancelled_at),
            "cancelled_at": stamp(clock.cancel_settles_at() if clock.cancelled_at is not None else None,
                                  status == "cancelled"),
            "request_counts": {"total": len(self.answers), "completed": succeeded, "failed": failed},
            "metadata": self.metadata,
        }
        input_tokens, output_tokens = self._input[done], self._output[done]
        view["usage"] = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                         "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                         "total_tokens": input_tokens + output_tokens}
        return view

    def _write_files(self, status: str, done: int, files: FileStore) -> None:
        output, errors = [], []
        for index, answer in enumerate(self.answers):
            if index >= done:
                if status == "expired":
                    errors.append(_line(index, self.id, answer.custom_id, None, EXPIRED_ERROR))
                continue  # cancelled: lines never run are left out
            body = orjson.Fragment(answer.body) if answer.json_body else answer.body.decode(errors="replace")
            response = {"status_code": answer.status, "request_id": answer.request_id, "body": body}
            (output if answer.status == 200 else errors).append(
                _line(index, self.id, answer.custom_id, response, None))
        if output:
            self.output_file_id = files.add(f"{self.id}_output.jsonl", "batch_output", b"".join(output)).id
        if errors:
            self.error_file_id = files.add(f"{self.id}_error.jsonl", "batch_output", b"".join(errors)).id
        self.written = True


def _line(index: int, batch_id: str, custom_id: str, response: dict[str, Any] | None,
          error: dict[str, str] | None) -> bytes:
    line = {"id": f"batch_req_{batch_id[6:]}_{index:06d}", "custom_id": custom_id, "response": response,
            "error": error}
    return orjson.dumps(line) + b"\n"


class BatchStore:
    def __init__(self) -> None:
        self._prefix = f"batch_mock{os.urandom(4).hex()}"
        self._ids = itertools.count(1)
        self.batches: dict[str, OpenAIBatch] = {}

    def new_id(self) -> str:
        return f"{self._prefix}{next(self._ids):06x}"


BATCHES = web.AppKey("openai_batches", BatchStore)


def check_input(
    content: bytes, endpoint: str, max_lines: int, max_bytes: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The lines of an input file and its problems in OpenAI's terms (lines counted from 1)."""
    problems: list[dict[str, Any]] = []

    def problem(code: str, message: str, line: int | None, param: str | None = None) -> None:
        if len(problems) < MAX_LISTED_ERRORS:
            problems.append({"code": code, "message": message, "param": param, "line": line})

    if len(content) > max_bytes:
        problem("file_too_large", f"The input file is {len(content)} bytes, larger than the "
                f"{max_bytes}-byte maximum for a batch.", None)
        return [], problems
    raw_lines = content.splitlines()
    while raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()
    if len(raw_lines) > max_lines:
        problem("too_many_requests", f"The input file has {len(raw_lines)} requests, more than the "
                f"{max_lines} maximum for a batch; line {max_lines + 1} is the first over it.", max_lines + 1)
        return [], problems
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_lines, 1):
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            problem("invalid_json_line", f"Line {number} is not valid JSON.", number)
            continue
        if not isinstance(line, dict):
            problem("invalid_json_line", f"Line {number} is not a JSON object.", number)
            continue
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            problem("missing_required_parameter", "Missing required parameter: 'custom_id'.", number, "custom_id")
        elif custom_id in seen:
            problem("duplicate_custom_id", f"The custom_id '{custom_id}' is used more than once in the "
                    "batch; custom_id must be unique.", number, "custom_id")
        else:
            seen.add(custom_id)
        if line.get("method") != "POST":
            problem("invalid_method", f"Invalid value for 'method': {line.get('method')!r}; only 'POST' "
                    "is supported.", number, "method")
        if line.get("url") != endpoint:
            problem("mismatched_endpoint", f"The url '{line.get('url')}' does not match the batch's "
                    f"endpoint '{endpoint}'.", number, "url")
        if not isinstance(line.get("body"), dict):
            problem("missing_required_parameter", "Missing required parameter: 'body'.", number, "body")
        lines.append(line)
    return lines, problems


async def answer_lines(lines: list[dict[str, Any]], endpoint: str, request: web.Request,
                 state: MockState) -> tuple[list[LineAnswer], list[str]]:
    """Each line's answer from the realtime route's code, and its prompt's fingerprint."""
    operation = operations_of(request)[endpoint]
    rate = state.options.batch_line_error_rate
    rng = state.rng
    answers, fingerprints = [], []
    for index, line in enumerate(lines):
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)  # ~15 us a line: let other calls in between
        request_id = state.request_id()
        plan = operation.plan_body(line["body"], request, state, {"x-request-id": request_id})
        if isinstance(plan, Plan):
            fingerprints.append(plan.fingerprint)
            answer = LineAnswer(line["custom_id"], plan.status, plan.body, plan.content_type == JSON, request_id)
            if plan.usage is not None and plan.status == 200:
                answer.input_tokens = plan.usage["prompt_tokens"]
                answer.output_tokens = plan.usage["completion_tokens"]
        else:  # the route's 400
            fingerprints.append(line["custom_id"])
            answer = LineAnswer(line["custom_id"], plan.status, plan.body, True, request_id)
        if rate and rng.random() < rate:
            answer = _injected_failure(answer, rng.random() < 0.5)
        answers.append(answer)
    return answers, fingerprints


def _injected_failure(answer: LineAnswer, rate_limited: bool) -> LineAnswer:
    if rate_limited:
        body = error_body(429, "Rate limit reached while processing the batch (mock).", "rate_limit_exceeded",
                          "requests")
        return LineAnswer(answer.custom_id, 429, body, True, answer.request_id)
    body = error_body(500, "The server had an error while processing your request (mock).", None, "server_error")
    return LineAnswer(answer.custom_id, 500, body, True, answer.request_id)


async def create(request: web.Request) -> web.Response:
    """``POST /v1/batches``: ``{input_file_id, endpoint, completion_window: "24h", metadata?}``."""
    state = request.app[STATE]
    headers = shape_of(request).first_headers(state.request_id())
    denied = refused(request, state, headers)
    if denied is not None:
        return denied
    body = await read_json_object(request)
    if body is None:
        return bad_request("We could not parse the JSON body of your request (mock).", headers)
    endpoint, window, metadata = body.get("endpoint"), body.get("completion_window"), body.get("metadata")
    operations = operations_of(request)
    if endpoint not in operations:
        return bad_request(f"Invalid value for 'endpoint': {endpoint!r}; the mock supports "
                           f"{', '.join(operations)}.", headers, "endpoint")
    if window != "24h":
        return bad_request(f"Invalid value for 'completion_window': {window!r}; supported: '24h'.", headers,
                           "completion_window")
    if metadata is not None and not _valid_metadata(metadata):
        return bad_request("'metadata' must be at most 16 string pairs (keys <= 64, values <= 512 characters).",
                           headers, "metadata")
    file_id = body.get("input_file_id")
    stored = request.app[FILES].files.get(file_id) if isinstance(file_id, str) else None
    if stored is None:
        return not_found("File", str(file_id), headers)
    if stored.purpose != "batch":
        return bad_request(f"The file {file_id} has purpose '{stored.purpose}'; a batch needs 'batch'.",
                           headers, "input_file_id")
    options = state.options
    lines, problems = check_input(stored.content, endpoint, options.batch_max_lines or MAX_LINES,
                                  options.batch_max_bytes or MAX_BYTES)
    answers: list[LineAnswer] = []
    fingerprints: list[str] = []
    if not problems:
        answers, fingerprints = await answer_lines(lines, endpoint, request, state)
    store = request.app[BATCHES]
    batch_id = store.new_id()
    model = str(lines[0]["body"].get("model")) if lines and not problems else None
    clock = BatchClock(options.batch_delay_s, len(answers), options.batch_expire)
    batch = OpenAIBatch(batch_id, endpoint, file_id, metadata, model, clock, answers, problems or None)
    store.batches[batch_id] = batch
    state.stats.batches["openai"].created(batch_id, fingerprints)
    if options.create_reply_delay_s:
        await asyncio.sleep(options.create_reply_delay_s)
    return respond(200, orjson.dumps(batch.view(time.monotonic(), request.app[FILES])), headers)


def _valid_metadata(metadata: Any) -> bool:
    return isinstance(metadata, dict) and len(metadata) <= 16 and all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in metadata.items())


def _lookup(request: web.Request) -> tuple[OpenAIBatch | web.Response, dict[str, str]]:
    return lookup(request, "Batch", request.app[BATCHES].batches)


async def retrieve(request: web.Request) -> web.Response:
    """``GET /v1/batches/{id}``."""
    batch, headers = _lookup(request)
    if isinstance(batch, web.Response):
        return batch
    return respond(200, orjson.dumps(batch.view(time.monotonic(), request.app[FILES])), headers)


async def cancel(request: web.Request) -> web.Response:
    """``POST /v1/batches/{id}/cancel``: ``cancelling`` now, ``cancelled`` once calls in flight end."""
    batch, headers = _lookup(request)
    if isinstance(batch, web.Response):
        return batch
    now = time.monotonic()
    status = batch.status(now)
    if status not in ACTIVE and status != "cancelling":
        return bad_request(f"Cannot cancel a batch with status '{status}'.", headers)
    if batch.clock.cancelled_at is None:
        batch.clock.cancelled_at = now
        request.app[STATE].stats.batches["openai"].cancels += 1
    return respond(200, orjson.dumps(batch.view(now, request.app[FILES])), headers)


async def listing(request: web.Request) -> web.Response:
    """``GET /v1/batches?after=&limit=``: newest first, a cursor page."""
    state = request.app[STATE]
    headers = shape_of(request).first_headers(state.request_id())
    denied = refused(request, state, headers)
    if denied is not None:
        return denied
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        return bad_request("Invalid value for 'limit': it must be between 1 and 100.", headers, "limit")
    newest_first = list(reversed(request.app[BATCHES].batches.values()))
    after = request.query.get("after")
    if after:
        ids = [batch.id for batch in newest_first]
        newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
    page = newest_first[:limit]
    now, files = time.monotonic(), request.app[FILES]
    data = [batch.view(now, files) for batch in page]
    body = {"object": "list", "data": data, "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None, "has_more": len(newest_first) > limit}
    return respond(200, orjson.dumps(body), headers)


def add_routes(app: web.Application, prefix: str, shape: OpenAIShape | None = None,
               operations: dict[str, Any] | None = None) -> None:
    """The batches routes under ``prefix``, in ``shape``'s dialect taking ``operations``'
    endpoints (OpenAI's when None)."""
    values: dict[str, Any] = {}
    if shape is not None:
        values[SHAPE_KEY] = shape
    if operations is not None:
        values[OPERATIONS_KEY] = operations
    app.router.add_post(f"{prefix}/batches", bind(create, values))
    app.router.add_get(f"{prefix}/batches", bind(listing, values))
    app.router.add_get(f"{prefix}/batches/{{batch_id}}", bind(retrieve, values))
    app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", bind(cancel, values))
