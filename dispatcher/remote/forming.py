"""Held jobs into provider batches: per (batch, model group, endpoint), in submit order,
each within the provider's line and size limits, spread over the group's deployments that
have a batch API. One transaction per provider batch; the batch row's lock (PostgreSQL) or
the single writer (SQLite) keeps two workers from forming the same jobs.
"""

from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy.engine import Connection

from dispatcher.deployments import Deployment
from dispatcher.engine.db_access import DatabaseAccess
from dispatcher.intake.validate import EMBEDDINGS
from dispatcher.store import provider_batches as part_sql
from dispatcher.store.tables import BatchStatus

log = logging.getLogger(__name__)

Limits = Callable[[Deployment], tuple[int, int]]


async def form_parts(db: DatabaseAccess, by_group: dict[str, list[Deployment]], limits: Limits, now: float) -> int:
    """Form provider batches for every batch that holds jobs of these groups; returns how many."""
    if not any(by_group.values()):
        return 0
    formed = 0
    for batch_id in await db.read(part_sql.batches_to_form, now=now):
        while True:
            made = await db.write(_form_next, batch_id=batch_id, by_group=by_group, limits=limits,
                                  now=now, postgres=db.postgres)
            if made is None:
                break
            formed += 1
            log.info("batch %s: provider batch %s formed with %d requests", batch_id, *made)
    return formed


def _form_next(connection: Connection, *, batch_id: str, by_group: dict[str, list[Deployment]],
               limits: Limits, now: float, postgres: bool) -> tuple[str, int] | None:
    """One more provider batch of ``batch_id``, or None when none is left to form here."""
    batch = part_sql.lock_batch(connection, batch_id, postgres)
    if batch is None or batch.status != BatchStatus.IN_PROGRESS:
        return None
    for group, endpoint in part_sql.held_groups(connection, batch_id):
        members = [d for d in by_group.get(group, []) if not (endpoint == EMBEDDINGS and d.adapter == "anthropic")]
        if not members:
            continue  # a worker serving this group forms them
        part = part_sql.next_part_number(connection, batch_id)
        deployment = members[part % len(members)]
        max_lines, max_bytes = limits(deployment)
        return part_sql.form_part(
            connection, batch_id=batch_id, group=group, endpoint=endpoint, deployment_id=deployment.id,
            part=part, max_lines=max_lines, max_bytes=max_bytes, now=now,
        )
    return None
