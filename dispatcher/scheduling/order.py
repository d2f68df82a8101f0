"""The claim order: which ready job of a model group a worker takes first."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dispatcher.store.jobs import ClaimedJob

# Columns of the jobs table, most significant first: the more urgent priority (the lower
# number), then the lower fair position (batches take turns, see fair.py), then the earlier
# insert. The ready-jobs index (store/tables.py ``ix_jobs_ready``) lists the same columns
# after model_group, so a claim reads the index in order and stops at its limit.
CLAIM_ORDER = ("priority", "fair_key", "id")


def start_order(job: ClaimedJob) -> tuple[int, int]:
    """Sort key for the jobs one claim took (the database returns them in no set order): the
    most urgent first, then by id. The first gets the earliest of the claim's send times."""
    return (job.priority, job.id)
