"""Usage and cost over attempts, grouped by model group, deployment, batch, day, API key or
route (realtime, provider-batch).

Attempts are what providers bill: retries and fallbacks included, cache hits free.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dispatcher.store.tables import api_keys, attempts, batches

SECONDS_PER_DAY = 86400
GROUPINGS = ("group", "deployment", "batch", "day", "key", "route")
# The row of batches submitted without an API key (the CLI, the Python client, the admin key).
DIRECT = "(direct)"


def _key(by: str, dialect: str):
    if by == "group":
        return attempts.c.model_group
    if by == "deployment":
        return sa.func.coalesce(attempts.c.deployment_id, "-")
    if by == "batch":
        return attempts.c.batch_id
    if by == "route":  # realtime calls, or lines of the providers' batch APIs (batch prices)
        return sa.func.coalesce(attempts.c.route, "realtime")
    if by == "key":
        # Key names are unique and never reused, so a name stands for one owner; batches
        # without one are named in Python (see usage_report).
        return api_keys.c.name
    if by == "day":
        days = attempts.c.started_at / SECONDS_PER_DAY
        # SQLite truncates on CAST; PostgreSQL rounds, so it needs floor().
        return sa.cast(sa.func.floor(days) if dialect == "postgresql" else days, sa.Integer)
    raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPINGS)}")


def usage_report(
    connection: Connection, *, by: str, since: float | None = None, until: float | None = None
) -> list[dict]:
    """One row per key: requests, failures, cache hits, tokens, cost, calls of unknown price."""
    key = _key(by, connection.dialect.name).label("key")
    billed = attempts.c.outcome.in_(["success", "error"])
    query = (
        sa.select(
            key,
            sa.func.count().filter(attempts.c.outcome != "abandoned").label("requests"),
            sa.func.count().filter(attempts.c.outcome == "error").label("failures"),
            sa.func.count().filter(attempts.c.outcome == "cache_hit").label("cache_hits"),
            sa.func.count().filter(attempts.c.outcome == "abandoned").label("abandoned"),
            sa.func.coalesce(sa.func.sum(attempts.c.prompt_tokens).filter(billed), 0).label("prompt_tokens"),
            sa.func.coalesce(sa.func.sum(attempts.c.completion_tokens).filter(billed), 0).label("completion_tokens"),
            sa.func.coalesce(sa.func.sum(attempts.c.total_tokens).filter(billed), 0).label("total_tokens"),
            sa.func.coalesce(sa.func.sum(attempts.c.cached_tokens).filter(billed), 0).label("cached_tokens"),
            sa.func.coalesce(sa.func.sum(attempts.c.cost).filter(billed), 0.0).label("cost"),
            sa.func.count()
            .filter(billed, attempts.c.total_tokens.is_not(None), attempts.c.cost.is_(None))
            .label("unknown_cost_requests"),
        )
        .group_by(key)
        .order_by(key)
    )
    if by == "key":
        # Attempts name their batch; the batch names its owner (the key id).
        query = (
            query.add_columns(batches.c.owner)
            .select_from(
                attempts.outerjoin(batches, batches.c.id == attempts.c.batch_id)
                .outerjoin(api_keys, api_keys.c.id == batches.c.owner)
            )
            .group_by(batches.c.owner)
        )
    if since is not None:
        query = query.where(attempts.c.started_at >= since)
    if until is not None:
        query = query.where(attempts.c.started_at < until)
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
