"""Every provider call on record, as one selectable: the attempts rows, and the successful
calls that job rows hold themselves.

A job that succeeded holds its call's deployment, request id, tokens, cost and latency anyway;
writing them again as an attempts row cost about 250 bytes a job (bench/storage.py). So the
call that gave a job its result is recorded on the job (``jobs.call_outcome``: success or
cache_hit), and ``attempts`` keeps the others: errors, retries, fallbacks, abandoned calls, late
results fenced out by a takeover, and provider batch lines. Readers of calls (usage reports)
read ``calls()``, never one table alone.
"""

from __future__ import annotations

import sqlalchemy as sa

from dispatcher.store.tables import attempts, jobs

FOLDED_OUTCOMES = ("success", "cache_hit")  # the calls a job row may hold

COLUMNS = (
    "job_id", "batch_id", "number", "claim", "model_group", "deployment_id", "worker_id",
    "started_at", "ended_at", "latency_ms", "outcome", "error_class", "status_code", "error_message",
    "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "cost", "request_id", "route",
)


def calls() -> sa.Subquery:
    """Every call, one row each, with the columns of ``COLUMNS`` (named as in ``attempts``)."""
    from_attempts = sa.select(*[attempts.c[name] for name in COLUMNS])
    # The job row's own call: it started its latency before it ended. Realtime only (provider
    # batch lines are attempts rows).
    from_jobs = sa.select(
        jobs.c.id.label("job_id"),
        jobs.c.batch_id,
        jobs.c.attempts.label("number"),
        jobs.c.claim,
        jobs.c.model_group,
        jobs.c.deployment_id,
        jobs.c.worker_id,
        (jobs.c.finished_at - sa.func.coalesce(jobs.c.latency_ms, 0.0) / 1000.0).label("started_at"),
        jobs.c.finished_at.label("ended_at"),
        jobs.c.latency_ms,
        jobs.c.call_outcome.label("outcome"),
        sa.null().label("error_class"),  # a success
        jobs.c.response_status.label("status_code"),
        sa.null().label("error_message"),
        jobs.c.prompt_tokens,
        jobs.c.completion_tokens,
        jobs.c.total_tokens,
        jobs.c.cached_tokens,
        jobs.c.cost,
        jobs.c.request_id,
        sa.null().label("route"),
    ).where(jobs.c.call_outcome.is_not(None))
    return sa.union_all(from_attempts, from_jobs).subquery("calls")


def calls_sql() -> str:
    """``calls()`` as SQL text, a derived table to name in a query of one's own (benches, tests):
    ``"SELECT ... FROM " + calls_sql() + " AS a"``."""
    return "(" + str(calls().element.compile(compile_kwargs={"literal_binds": True})) + ")"
