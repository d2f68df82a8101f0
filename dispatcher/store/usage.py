"""Usage and cost over calls (store/calls.py), grouped by model group, deployment, batch, day,
API key or route (realtime, provider-batch).

Calls are what providers bill: retries and fallbacks included, cache hits free.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dispatcher.store.calls import calls
from dispatcher.store.tables import api_keys, batches

SECONDS_PER_DAY = 86400
GROUPINGS = ("group", "deployment", "batch", "day", "key", "route")
# The row of batches submitted without an API key (the CLI, the Python client, the admin key).
DIRECT = "(direct)"


def _key(every_call, by: str, dialect: str):
    if by == "group":
        return every_call.c.model_group
    if by == "deployment":
        return sa.func.coalesce(every_call.c.deployment_id, "-")
    if by == "batch":
        return every_call.c.batch_id
    if by == "route":  # realtime calls, or lines of the providers' batch APIs (batch prices)
        return sa.func.coalesce(every_call.c.route, "realtime")
    if by == "key":
        # Key names are unique and never reused, so a name stands for one owner; batches
        # without one are named in Python (see usage_report).
        return api_keys.c.name
    if by == "day":
        days = every_call.c.started_at / SECONDS_PER_DAY
        # SQLite truncates on CAST; PostgreSQL rounds, so it needs floor().
        return sa.cast(sa.func.floor(days) if dialect == "postgresql" else days, sa.Integer)
    raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPINGS)}")


def usage_report(
    connection: Connection, *, by: str, since: float | None = None, until: float | None = None
) -> list[dict]:
    """One row per key: requests, failures, cache hits, tokens, cost, calls of unknown price."""
    every_call = calls()
    key = _key(every_call, by, connection.dialect.name).label("key")
    billed = every_call.c.outcome.in_(["success", "error"])
    query = (
        sa.select(
            key,
            sa.func.count().filter(every_call.c.outcome != "abandoned").label("requests"),
            sa.func.count().filter(every_call.c.outcome == "error").label("failures"),
            sa.func.count().filter(every_call.c.outcome == "cache_hit").label("cache_hits"),
            sa.func.count().filter(every_call.c.outcome == "abandoned").label("abandoned"),
            sa.func.coalesce(sa.func.sum(every_call.c.prompt_tokens).filter(billed), 0).label("prompt_tokens"),
            sa.func.coalesce(sa.func.sum(every_call.c.completion_tokens).filter(billed), 0).label("completion_tokens"),
            sa.func.coalesce(sa.func.sum(every_call.c.total_tokens).filter(billed), 0).label("total_tokens"),
            sa.func.coalesce(sa.func.sum(every_call.c.cached_tokens).filter(billed), 0).label("cached_tokens"),
            sa.func.coalesce(sa.func.sum(every_call.c.cost).filter(billed), 0.0).label("cost"),
            sa.func.count()
            .filter(billed, every_call.c.total_tokens.is_not(None), every_call.c.cost.is_(None))
            .label("unknown_cost_requests"),
        )
        .select_from(every_call)
        .group_by(key)
        .order_by(key)
    )
    if by == "key":
        # Calls name their batch; the batch names its owner (the key id).
        query = (
            query.add_columns(batches.c.owner)
            .select_from(
                every_call.outerjoin(batches, batches.c.id == every_call.c.batch_id)
                .outerjoin(api_keys, api_keys.c.id == batches.c.owner)
            )
            .group_by(batches.c.owner)
        )
    if since is not None:
        query = query.where(every_call.c.started_at >= since)
    if until is not None:
        query = query.where(every_call.c.started_at < until)
    rows = []
    for row in connection.execute(query):
        data = dict(row._mapping)
        if by == "key":
            data["key"] = data["key"] or data["owner"] or DIRECT
        if by == "day":
            import datetime as dt

            data["key"] = dt.datetime.fromtimestamp(data["key"] * SECONDS_PER_DAY, dt.timezone.utc).date().isoformat()
        # Unknown, not zero, when some calls have no known price; the priced part is beside.
        data["known_cost"] = round(float(data["cost"]), 10)
        data["cost"] = None if data["unknown_cost_requests"] else data["known_cost"]
        rows.append(data)
    if by == "key":
        rows.sort(key=lambda data: data["key"])
    return rows
