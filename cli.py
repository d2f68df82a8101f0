"""The ``llm-dispatch`` command line: parse, call the client API, print.

Data (batch ids, JSON, results) goes to stdout; messages for people go to stderr.
Exit codes: 0 ok, 1 the batch finished with failures, 2 bad usage or input,
3 a service (database, Redis) cannot be reached, 130 interrupted.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from dispatcher.errors import DispatcherError, InputError, OutputError, UsageError, user_error_for
from dispatcher.safe_text import printable
from dispatcher.times import TIME_OR_AGO_HELP

EXIT_FAILURES = 1
EXIT_INTERRUPTED = 130
# How often `watch` (with no local worker) checks that some worker is alive.
WORKER_CHECK_INTERVAL_S = 5.0


class AppContext:
    """What every command shares: the global options and a lazily built Client."""

    def __init__(self, config: str | None, verbose: int, log_format: str):
        self.config_path = config
        self.verbose = verbose
        self.log_format = log_format
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from dispatcher.client import Client

            self._client = Client(self.config_path)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


pass_app = click.make_pass_decorator(AppContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    help="Config file (LiteLLM-style model_list). Default: $LLM_DISPATCH_CONFIG, "
    "else ./llm-dispatch.yaml, else a built-in 'mock' group.",
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines for people, or JSON lines for log collectors.",
)
@click.version_option(package_name="llm-dispatcher")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: int, log_format: str) -> None:
    """Run large batches of LLM chat completions under rate limits, with priorities.

    \b
    Quick start (no services, no keys; the built-in mock provider answers):
      llm-dispatch run examples/prompts.jsonl -o results.jsonl
    Distributed (set redis_url and database_url in the config):
      llm-dispatch -c prod.yaml submit big.jsonl --priority 5     # prints the batch id
      llm-dispatch -c prod.yaml worker --processes 2              # on any number of machines
      llm-dispatch -c prod.yaml watch BATCH_ID
      llm-dispatch -c prod.yaml results BATCH_ID -o out.jsonl --errors errors.jsonl
    """
    from dispatcher.logs import setup_logging

    is_server = ctx.invoked_subcommand in ("worker", "serve")  # long-running: say what happens
    setup_logging(max(verbose, 1) if is_server else verbose, log_format)
    ctx.obj = AppContext(config, verbose, log_format)
    ctx.call_on_close(ctx.obj.close)


# -- shared options ------------------------------------------------------------------------

def submit_options(*, for_submit: bool = False):
    """The fields of SubmitOptions (dispatcher/submit_options.py) as click options."""
    from dispatcher.submit_options import public_fields

    def decorate(function):
        for spec in reversed(public_fields()):
            if for_submit or not spec.metadata.get("only_submit"):
                function = click.option(*_flags(spec), **_option_shape(spec))(function)
        return function

    return decorate


def _flags(spec) -> list[str]:
    return ["--" + spec.name.replace("_", "-"), *filter(None, [spec.metadata.get("short")])]


def _option_shape(spec) -> dict:
    """click's settings for one SubmitOptions field, read from its type and metadata."""
    from typing import get_args, get_type_hints

    from dispatcher.submit_options import SubmitOptions

    hint = get_type_hints(SubmitOptions)[spec.name]
    kinds = set(get_args(hint)) or {hint}
    shape = {"help": spec.metadata["help"], "metavar": spec.metadata.get("metavar")}
    if hint is bool:
        return {"help": shape["help"], "is_flag": True}
    if getattr(hint, "__origin__", None) is dict:
        return {**shape, "multiple": True}  # KEY=VALUE pairs, see submit_fields
    if str not in kinds and float in kinds:
        shape["type"] = click.FloatRange(min=0, min_open=True) if spec.metadata.get("positive") else float
        if isinstance(spec.default, float):
            shape.update(default=spec.default, show_default=True)
    return shape


def submit_fields(options: dict) -> dict:
    """Keyword arguments for Client.submit from the parsed options (unset ones left out)."""
    fields = {name: value for name, value in options.items() if value is not None}
    if "metadata" in fields:
        fields["metadata"] = parse_metadata(fields["metadata"])
    return fields


def parse_metadata(pairs: tuple[str, ...]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--metadata expects KEY=VALUE, got {pair!r}")
        metadata[key] = value
    return metadata


def _priority(value: str | None, what: str = "--priority") -> int | None:
    if value is None:
        return None
    from dispatcher.priority import parse_priority

    try:
        return parse_priority(value)
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


def info(message: str) -> None:
    """A message for people (stderr); text from users inside it cannot drive the terminal."""
    click.echo(printable(message, keep_newlines=True), err=True)


def command_hint(app: AppContext, *args: str) -> str:
    """A command line to paste, with the --config this one was given."""
    import shlex

    config = ("--config", app.config_path) if app.config_path else ()
    return shlex.join(("llm-dispatch", *config, *args))


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (timeout, systemd, docker stop) stops like Ctrl-C: calls in flight finish."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def open_output(path: str | None) -> Iterator:
    """A binary stream: the file at ``path``, or stdout for None or '-'."""
    if path in (None, "-"):
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with Path(path).open("wb") as handle:
        yield handle


def check_output_paths(output: str | None, errors: str | None) -> None:
    """Refuse result paths that cannot be written, before any request is submitted or paid for."""
    named = [(option, path) for option, path in (("--output", output), ("--errors", errors))
             if path not in (None, "-")]
    for option, path in named:
        check_writable(option, Path(path))
    if len(named) == 2 and Path(output).resolve() == Path(errors).resolve():
        raise OutputError(f"--output and --errors name the same file ({output}); give two files")


def check_writable(option: str, target: Path) -> None:
    if target.is_dir():
        raise OutputError(f"{option} {target}: that is a folder; give a file path")
    if not target.parent.is_dir():
        raise OutputError(f"{option} {target}: folder {target.parent} does not exist; create it first")
    try:
        if target.exists():
            with target.open("ab"):  # append mode: the file is opened, not changed
                pass
        else:
            with target.open("xb"):
                pass
            target.unlink()
    except OSError as exc:
        raise OutputError(f"{option} {target}: cannot write it ({exc.strerror or exc})") from None


def report_submit(result) -> None:
    if result.invalid:
        info(f"{result.invalid} invalid line(s) recorded as failed jobs, for example:")
        for problem in result.problems[:5]:
            info(f"  {problem.message}")
    groups = ", ".join(f"{group}: {n}" for group, n in sorted(result.groups.items()))
    info(f"batch {result.batch_id}: {result.total} requests ({groups or 'none valid'})")


def export_results(app: AppContext, batch_id: str, output: str | None, errors: str | None) -> None:
    try:
        with open_output(output) as out:
            if errors:
                with open_output(errors) as err:
                    counts = app.client.write_results(batch_id, out, err)
            else:
                counts = app.client.write_results(batch_id, out, None)
    except OSError as exc:
        what = exc.filename or "the results"
        again = command_hint(app, "results", batch_id, *output_args(output, errors))
        raise OutputError(
            f"cannot write {what}: {exc.strerror or exc}. Nothing is lost: every result stays in "
            f"the database; write them with: {again}"
        ) from None
    where = output if output not in (None, "-") else "stdout"
    info(f"{counts.succeeded} results written to {where}")
    if errors:
        info(f"{counts.failed} requests that did not succeed (failed, cancelled, expired) written to {errors}")


def wait_with_progress(app: AppContext, batch_id: str, node=None):
    """Show progress until the batch ends. Ctrl-C stops the local worker gracefully (if any).

    Without a local worker, says so when no live worker is registered (nothing would move).
    """
    from dispatcher.console import BatchProgress

    client = app.client
    interrupted = 0
    note = ""
    next_worker_check = 0.0
    with BatchProgress() as progress:
        while True:
            try:
                while True:
                    status = client.wait(batch_id, timeout=0.5, poll_interval=0.5)
                    if node is not None and node.error is not None:
                        raise DispatcherError(f"the in-process worker failed: {node.error}")
                    if status.done:
                        note = ""  # a note about live workers or stopping is stale now
                    elif node is None and time.monotonic() >= next_worker_check:
                        next_worker_check = time.monotonic() + WORKER_CHECK_INTERVAL_S
                        note = "" if client.live_workers() else (
                            f"no live workers: start some with `{command_hint(app, 'worker')}`"
                        )
                    progress.update(status, note)
                    if status.done:
                        return status, interrupted
                    if node is not None and interrupted and node.wait(timeout=0):
                        return status, interrupted
            except KeyboardInterrupt:
                interrupted += 1
                if node is None:
                    return client.status(batch_id), interrupted
                if interrupted == 1:
                    grace = client.worker_settings().shutdown_grace
                    note = f"stopping: finishing calls in flight (up to {grace:.0f}s); Ctrl-C again to abandon them"
                    node.request_stop()
                else:
                    note = "abandoning calls in flight"
                    node.request_stop(0)


def output_args(output: str | None, errors: str | None) -> list[str]:
    """The -o/--errors options of a command line that writes these result files."""
    return [*(["-o", output] if output else []), *(["--errors", errors] if errors else [])]


def resume_hint(app: AppContext, batch_id: str, output: str | None, errors: str | None) -> str:
    """A command that resumes following the batch and writes the result files when it ends."""
    watch = command_hint(app, "watch", batch_id, *output_args(output, errors))
    if app.client.embedded:
        return f"Resume with: {watch}"
    return (f"Its requests stay queued for workers ({command_hint(app, 'worker')}); "
            f"follow it with: {watch}")


# -- commands ------------------------------------------------------------------------------

@cli.command()
@click.argument("input_file", metavar="INPUT", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True),
              help="Where results go (OpenAI batch output format). Default: stdout.")
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False),
              help="Also write failed requests here (OpenAI batch error-file format).")
@click.option("--concurrency", type=click.IntRange(min=1),
              help="Calls kept in flight by this process. Default: config (256).")
@submit_options()
@pass_app
def run(app: AppContext, input_file, output, errors_path, concurrency, **options) -> None:
    """Submit INPUT, process it in this process, and write the results.

    INPUT is OpenAI batch JSONL (or the short form with body fields at top level);
    '-' reads stdin. With no redis_url configured this needs no services at all
    (SQLite file and an in-process queue); with Redis, other workers help too.
    The result paths are checked before anything is submitted. Ctrl-C stops cleanly and
    prints the `watch BATCH_ID -o ...` command that resumes and writes the same files.
    """
    check_output_paths(output, errors_path)
    client = app.client
    fields = submit_fields(options)
    with sigterm_as_interrupt():
        node = client.start_worker(concurrency=concurrency)
        try:
            result = client.submit(input_file, **fields)
            report_submit(result)
            status, interrupted = wait_with_progress(app, result.batch_id, node)
        finally:
            node.stop()
    if interrupted and not status.done:
        # run writes to stdout without -o: the resumed command does the same (-o -).
        hint = resume_hint(app, result.batch_id, output or "-", errors_path)
        info(f"interrupted; nothing is lost. {hint}")
        sys.exit(EXIT_INTERRUPTED)
    export_results(app, result.batch_id, output, errors_path)
    finish(app, status, errors_path)


@cli.command()
@click.argument("input_file", metavar="INPUT", type=click.Path(dir_okay=False, allow_dash=True))
@submit_options(for_submit=True)
@pass_app
def submit(app: AppContext, input_file, **options) -> None:
    """Validate INPUT and queue it for workers; prints the batch id on stdout.

    The whole input is validated first: unless --skip-invalid is given, one bad line
    refuses the submission (exit 2) and nothing is stored.
    """
    client = app.client
    result = client.submit(input_file, **submit_fields(options))
    if result.existing:
        info(f"idempotency key seen before: batch {result.batch_id} already exists")
    else:
        report_submit(result)
        if client.embedded:
            info(f"embedded mode (no redis_url): run `{command_hint(app, 'watch', result.batch_id)}` "
                 "to process it in this machine's process")
    click.echo(result.batch_id)


@cli.command()
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="Print an OpenAI Batch object (OpenAI's status, as "
              "the HTTP API shows it; ours, e.g. budget_exceeded, in dispatcher_status; plus usage and cost).")
@pass_app
def status(app: AppContext, batch_id: str, as_json: bool) -> None:
    """Show a batch's state, counts, tokens and cost."""
    batch = app.client.status(batch_id)
    if as_json:
        click.echo(json.dumps(batch.to_openai(), indent=2))
        return
    from dispatcher.console import batch_table, out_console

    out_console.print(batch_table(batch))


@cli.command(name="list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--status", "status_filter", help="Only batches in this status (e.g. in_progress).")
@click.option("--json", "as_json", is_flag=True, help="One JSON list of OpenAI Batch objects.")
@pass_app
def list_batches(app: AppContext, limit: int, status_filter: str | None, as_json: bool) -> None:
    """List recent batches, newest first."""
    batches = app.client.list(limit=limit, status=status_filter)  # an unknown status: exit 2
    if as_json:
        click.echo(json.dumps([b.to_openai() for b in batches], indent=2))
        return
    from dispatcher.console import batches_table, out_console

    if not batches:
        info(f"no batches with status {status_filter}" if status_filter else "no batches yet")
        return
    out_console.print(batches_table(batches))


@cli.command()
@click.argument("batch_id")
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True),
              help="When the batch ends, write its results here ('-': stdout), like `run -o`.")
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False),
              help="When the batch ends, write its failed requests here, like `run --errors`.")
@pass_app
def watch(app: AppContext, batch_id: str, output: str | None, errors_path: str | None) -> None:
    """Follow a batch until it ends: progress bar, rate, ETA, failures.

    In embedded mode (no redis_url) this process also works on the batch, so a batch
    whose `run` was interrupted resumes here; with -o/--errors it then writes the same
    files `run` would have. Exit code 1 if some requests failed.
    """
    check_output_paths(output, errors_path)
    client = app.client
    batch = client.status(batch_id)
    node = None
    with sigterm_as_interrupt():
        if client.embedded and not batch.done:
            info("embedded mode: processing the batch in this process")
            node = client.start_worker()
        try:
            status, interrupted = wait_with_progress(app, batch_id, node)
        finally:
            if node is not None:
                node.stop()
    if interrupted and not status.done:
        info(f"stopped watching; nothing is lost. {resume_hint(app, batch_id, output, errors_path)}")
        sys.exit(EXIT_INTERRUPTED)
    if output or errors_path:
        export_results(app, batch_id, output, errors_path)
    finish(app, status, errors_path)


@cli.command()
@click.argument("batch_id")
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True),
              help="Output file for succeeded requests. Default: stdout.")
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False),
              help="Error file for failed, cancelled and expired requests.")
@pass_app
def results(app: AppContext, batch_id: str, output: str | None, errors_path: str | None) -> None:
    """Write a batch's results in OpenAI batch format, in submit order.

    One line per succeeded request; with --errors, one line per failed request in
    OpenAI's error-file format. Works on unfinished batches too (partial results).
    """
    check_output_paths(output, errors_path)
    batch = app.client.status(batch_id)
    if not batch.done:
        info(f"batch {batch_id} is {batch.status}: these results are partial")
    export_results(app, batch_id, output, errors_path)


@cli.command()
@click.argument("batch_id")
@pass_app
def cancel(app: AppContext, batch_id: str) -> None:
    """Cancel a batch: queued requests will not run, requests in flight finish.

    Results of finished requests stay retrievable with `results`.
    """
    batch = app.client.cancel(batch_id)
    info(f"batch {batch_id} is {batch.status}: {batch.cancelled} requests cancelled, "
         f"{batch.succeeded} succeeded, {batch.failed} failed")


@cli.command()
@click.option("--by", type=click.Choice(["group", "deployment", "batch", "day", "key", "route"]), default="group",
              show_default=True, help="How to group the report (key: by the API key whose batches made "
              "the calls; '(direct)' for batches submitted without one; route: realtime calls, or "
              "lines of the providers' batch APIs, at batch prices).")
@click.option("--since", metavar="TIME", help=f"From TIME: {TIME_OR_AGO_HELP}.")
@click.option("--until", metavar="TIME", help="Up to TIME (same forms as --since).")
@click.option("--json", "as_json", is_flag=True, help="A JSON list.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header line.")
@pass_app
def usage(app: AppContext, by: str, since: str | None, until: str | None, as_json: bool, as_csv: bool) -> None:
    """Tokens, requests, failures and cost, from every provider call (retries included).

    Cache hits cost nothing and are counted apart; calls whose price is unknown are counted
    in 'unknown price', never as free: with --json/--csv, 'cost' is then null/empty and
    'known_cost' holds the priced calls' part.
    """
    rows = app.client.usage(by=by, since=since, until=until)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from dispatcher.console import out_console, usage_table, write_usage_csv

    if as_csv:
        write_usage_csv(rows, by, sys.stdout)
        return
    if not rows:
        info("no provider calls in that period")
        return
    out_console.print(usage_table(rows, by))


@cli.command()
@click.option("--finished-before", required=True, metavar="TIME",
              help=f"Prune batches that ended before TIME: {TIME_OR_AGO_HELP}, e.g. 30d.")
@click.option("--include-undownloaded", is_flag=True,
              help="Also prune batches whose results were never downloaded (by 'results' or the API).")
@click.option("--dry-run", is_flag=True, help="Only say which batches would be pruned.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_app
def prune(app: AppContext, finished_before: str, include_undownloaded: bool, dry_run: bool, as_json: bool) -> None:
    """Drop the request and response bodies of batches that ended long ago.

    Kept: every batch with its status and counters, every job's status, tokens, cost and
    error, and every provider call, so 'usage' reports the same totals. Gone: the bodies,
    so 'results' on a pruned batch says it was pruned. Never pruned: batches still running,
    and (unless --include-undownloaded) batches whose results were never downloaded.
    Works a few thousand jobs per transaction; PostgreSQL reuses the space once (auto)vacuum
    has passed (files do not shrink). Workers can do this on their own: see 'retention'
    in the README.
    """
    pruned = app.client.prune(
        finished_before=finished_before, include_undownloaded=include_undownloaded, dry_run=dry_run
    )
    if as_json:
        click.echo(json.dumps(pruned.as_dict(), indent=2))
        return
    verb = "would prune" if dry_run else "pruned"
    count = len(pruned.batches)
    info(f"{verb} the bodies of {count} batch{'es' if count != 1 else ''} ({pruned.jobs} jobs)")
    for batch_id in pruned.batches:
        info(f"  {batch_id}")
    kept = pruned.skipped_undownloaded
    if kept:
        info(f"kept {kept} ended batch{'es' if kept != 1 else ''} whose results were never downloaded "
             "(--include-undownloaded prunes them too)")


@cli.command()
@click.argument("batch_id")
@click.argument("priority")
@pass_app
def reprioritize(app: AppContext, batch_id: str, priority: str) -> None:
    """Change the priority of a batch's waiting requests (0-9 or urgent/high/normal/low/bulk).

    Requests already running are not affected; the waiting ones keep their order and join
    the new level's turn-taking where it stands now.
    """
    batch, moved = app.client.reprioritize(batch_id, _priority(priority, "PRIORITY"))
    info(f"batch {batch_id}: {moved} waiting requests now at priority {batch.priority}")


@cli.command()
@click.argument("prompt")
@click.option("--model", "-m", help="Model group. Default: the config's default_model.")
@click.option("--priority", "-p", default="urgent", show_default=True,
              help="0-9 or urgent/high/normal/low/bulk.")
@click.option("--system", help="A system message to send before the prompt.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Most completion tokens per request.")
@click.option("--temperature", type=float)
@click.option("--json", "as_json", is_flag=True, help="Print the whole response body as JSON.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300, show_default=True,
              help="Seconds to wait for the answer.")
@pass_app
def complete(app: AppContext, prompt: str, model, priority, system, max_tokens, temperature,
             as_json: bool, timeout: float) -> None:
    """One completion through the queue, ahead of bulk work: prints the answer.

    PROMPT is the user message; '-' reads stdin, which may hold the prompt text or a whole
    chat-completions JSON body ({"messages": [...], ...}). In embedded mode (no redis_url)
    this process runs the request itself.
    """
    body = app.client.complete(_prompt_or_body(prompt), model=model, priority=_priority(priority),
                               timeout=timeout, system=system, max_tokens=max_tokens,
                               temperature=temperature)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    message = (body.get("choices") or [{}])[0].get("message") or {}
    content = message.get("content")
    if content is None and message.get("tool_calls"):
        content = json.dumps(message["tool_calls"], indent=2)
    click.echo(content if content is not None else json.dumps(body))


def _prompt_or_body(prompt: str) -> str | dict:
    """PROMPT as given; '-': stdin's text, or the chat-completions body it holds as JSON."""
    if prompt != "-":
        return prompt
    text = sys.stdin.read()
    if not text.lstrip().startswith("{"):
        return text.rstrip("\n")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"stdin looks like JSON but is not valid: {exc}") from None
    if not isinstance(body, dict):
        raise UsageError("a JSON body on stdin must be an object with 'messages'")
    return body


@cli.command()
@click.argument("batch_id")
@click.option("--failed", "failed_only", is_flag=True, required=True,
              help="Queue the failed requests again (required; invalid input lines stay failed).")
@pass_app
def retry(app: AppContext, batch_id: str, failed_only: bool) -> None:
    """Queue a batch's failed requests again; the batch goes back to in_progress."""
    client = app.client
    batch, retried = client.retry_failed(batch_id)
    info(f"batch {batch_id}: {retried} failed requests queued again; now {batch.status}")
    if retried and client.embedded:
        info(f"embedded mode (no redis_url): run `{command_hint(app, 'watch', batch_id)}` "
             "to process them in this machine's process")


@cli.command()
@pass_app
def recover(app: AppContext) -> None:
    """Rebuild queue state after Redis lost its data (or any time; it is idempotent).

    Requeues jobs held by workers that stopped heartbeating, expires jobs past their
    completion window, and sends wake messages for every model group with queued jobs.
    Jobs already finished are never touched, so nothing runs twice. Workers also do all of
    this on their own every few seconds; this makes it immediate.
    """
    report = app.client.recover()
    queued = ", ".join(f"{g}: {n}" for g, n in sorted(report["queued_jobs_by_group"].items())) or "none"
    info(f"requeued {report['jobs_requeued_from_dead_workers']} jobs of dead workers; "
         f"queued jobs announced again ({queued})")


@cli.command()
@click.option("--processes", "-p", type=click.IntRange(min=1),
              help="Worker processes to run (each with its own event loop). Default: config (1).")
@click.option("--concurrency", type=click.IntRange(min=1),
              help="Provider calls each process keeps in flight. Default: config (256).")
@click.option("--groups", help="Comma-separated model groups to serve. Default: all.")
@click.option("--metrics-port", type=click.IntRange(min=1, max=65535),
              help="Serve Prometheus metrics at http://HOST:PORT/metrics (process i: PORT+i). "
              "Default: config worker.metrics_port (off).")
@click.option("--metrics-host", metavar="ADDRESS",
              help="Address the metrics server listens on. Default: config worker.metrics_host "
              "(127.0.0.1); 0.0.0.0 lets Prometheus on other machines scrape it.")
@pass_app
def worker(app: AppContext, processes: int | None, concurrency: int | None, groups: str | None,
           metrics_port: int | None, metrics_host: str | None) -> None:
    """Run worker processes that execute queued jobs (needs redis_url for a fleet).

    Start it on as many machines as you like; they share rate limits and the queue
    through Redis and the database. A worker that dies is restarted, and its jobs are
    handed to others at once (or after `dead_after` seconds if the machine is lost).
    SIGTERM/Ctrl-C: stop taking jobs, let calls in flight finish (shutdown_grace), exit.
    """
    from workers.supervisor import Supervisor

    client = app.client
    client.check_services()
    settings = client.worker_settings()
    if client.embedded:
        info("no redis_url configured: this worker finds jobs by polling the database "
             f"every {settings.poll_interval:g}s")
    chosen = [g.strip() for g in groups.split(",")] if groups else None
    unknown = client.unknown_groups(chosen or [])
    if unknown:
        raise UsageError(f"--groups: unknown model group(s) {', '.join(unknown)}")
    supervisor = Supervisor(
        config_path=str(client.config_path) if client.config_path else None,
        processes=processes or settings.processes,
        concurrency=concurrency,
        groups=chosen,
        verbose=max(app.verbose, 1),
        log_format=app.log_format,
        hand_back=client.hand_back_worker,
        shutdown_grace=settings.shutdown_grace,
        metrics_port=metrics_port or settings.metrics_port,
        metrics_host=metrics_host,
    )
    sys.exit(supervisor.run())


@cli.command()
@click.option("--host", metavar="ADDRESS", help="Address to listen on. Default: config api.host "
              "(127.0.0.1); 0.0.0.0 lets other machines (or containers) connect.")
@click.option("--port", type=click.IntRange(min=0, max=65535), help="Port. Default: config api.port (8080).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="API processes on the port (above 1 needs redis_url).")
@pass_app
def serve(app: AppContext, host: str | None, port: int | None, workers: int) -> None:
    """Serve the OpenAI-compatible HTTP API: files, batches, chat completions, models.

    \b
    Point the official SDK at it:
      OpenAI(base_url="http://127.0.0.1:8080/v1", api_key=KEY)
    KEY is the config's admin key (dispatcher_settings.api.admin_key, or a LiteLLM config's
    general_settings.master_key) or one made by `keys create`.
    Without redis_url it also runs the jobs in this process (a whole system on one machine);
    with Redis, start `llm-dispatch worker` too. SIGTERM/Ctrl-C: finish answers, then exit.
    """
    from dispatcher.api.server import serve as serve_api

    serve_api(app.client, host=host, port=port, workers=workers, access_log=app.verbose >= 1,
              log_format=app.log_format)


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command()
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=60, show_default=True,
              metavar="SECONDS", help="Wait this long for a database server that is still starting "
              "(connection refused); 0 fails at once.")
@pass_app
def upgrade(app: AppContext, wait_s: float) -> None:
    """Create or migrate the database schema to the current version."""
    done = app.client.upgrade_schema(wait_s=wait_s, notify=info)
    if done.before == done.after:
        info(f"{done.display_url}: schema already at revision {done.after}")
    else:
        info(f"{done.display_url}: schema upgraded from {done.before or 'empty'} to {done.after} "
             f"(head {done.head})")


@cli.group()
def keys() -> None:
    """API keys for `llm-dispatch serve`: one per team, each with its own limits.

    Only a hash of each secret is stored: `keys create` prints the secret once, and nothing
    can show it again (revoke the key and create another).
    """


@keys.command(name="create")
@click.option("--name", required=True, help="A unique name, e.g. the team that will use it.")
@click.option("--models", "models_text", metavar="GROUP,...",
              help="The model groups it may use (comma-separated). Default: every group.")
@click.option("--max-priority", metavar="PRIORITY",
              help="The most urgent priority it may ask for, 0-9 or urgent/high/normal/low/bulk "
              "('high' allows 2..9). Default: any.")
@click.option("--max-cost", type=click.FloatRange(min=0, min_open=True), metavar="USD",
              help="Ceiling of each batch's cost cap (max_cost); a batch asking for none gets this one.")
@click.option("--json", "as_json", is_flag=True, help="Print the key and its secret as one JSON object.")
@pass_app
def create_key(app: AppContext, name: str, models_text: str | None, max_priority: str | None,
               max_cost: float | None, as_json: bool) -> None:
    """Create an API key and print its secret (on stdout, this once only)."""
    models = [group.strip() for group in models_text.split(",") if group.strip()] if models_text is not None else None
    key, secret = app.client.create_key(
        name, models=models, max_priority=_priority(max_priority, "--max-priority"), max_cost=max_cost,
    )
    info(f"API key {key.id} ({key.name}) created. Store its secret now: it is not shown again "
         "(only its hash is kept).")
    if as_json:
        click.echo(json.dumps({**key.to_dict(), "secret": secret}, indent=2))
    else:
        click.echo(secret)


@keys.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON list (never secrets: none is stored).")
@pass_app
def list_keys(app: AppContext, as_json: bool) -> None:
    """List API keys and their limits, revoked ones included."""
    api_keys = app.client.list_keys()
    if as_json:
        click.echo(json.dumps([key.to_dict() for key in api_keys], indent=2))
        return
    if not api_keys:
        info(f"no API keys yet; create one with: {command_hint(app, 'keys', 'create', '--name', 'NAME')}")
        return
    from dispatcher.console import keys_table, out_console

    out_console.print(keys_table(api_keys))


@keys.command(name="revoke")
@click.argument("id_or_name")
@pass_app
def revoke_key(app: AppContext, id_or_name: str) -> None:
    """Revoke an API key (by id or name): its secret stops working at once.

    Its batches and files stay, and usage still reports them under its name.
    """
    key = app.client.revoke_key(id_or_name)
    info(f"API key {key.id} ({key.name}) is revoked: its secret no longer authenticates")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
@pass_app
def models(app: AppContext, as_json: bool) -> None:
    """List model groups and deployments: limits, prices and current use.

    With Redis configured, also what the fleet is doing now: requests and tokens booked this
    minute against each limit, calls in flight, and any pause after a provider's 429.
    """
    rows = app.client.deployment_report()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from dispatcher.console import deployments_table, out_console

    out_console.print(deployments_table(rows))


def finish(app: AppContext, status, errors_path: str | None = None) -> None:
    """Exit 1 when some requests did not succeed, else 0."""
    if status.unsuccessful:
        if errors_path:
            where = f"they are in {errors_path}"
        else:
            where = f"see them with: {command_hint(app, 'results', status.id, '--errors', 'errors.jsonl')}"
        info(f"{status.unsuccessful} of {status.total} requests did not succeed ({where})")
        sys.exit(EXIT_FAILURES)


def main() -> None:
    """Console-script entry: run the CLI and turn our errors into messages and exit codes."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `llm-dispatch results X | head` is fine
    try:
        cli.main(prog_name="llm-dispatch", standalone_mode=False)
    except click.exceptions.Abort:
        info("aborted")
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except InputError as exc:
        info(f"error: {exc}")
        sys.exit(exc.exit_code)
    except DispatcherError as exc:
        info(f"error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        info("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        # Database and Redis failures: a short message, never SQLAlchemy's text (it carries the
        # statement's parameters: names, request bodies). Anything else is a bug: traceback.
        explained = user_error_for(exc)
        if explained is None:
            raise
        info(f"error: {explained}")
        sys.exit(explained.exit_code)


if __name__ == "__main__":
    main()
