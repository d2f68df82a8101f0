"""Fair positions: how batches of one priority level take turns.

Every queued job has a fair position (the ``fair_key`` column), compared only with jobs of
the same (model group, priority) level; the claim takes the lowest first (order.py). A job's
position is where its batch starts at the level plus its place in the batch over the batch's
weight: batches at a level interleave (weighted round-robin) and each keeps its submit order.
"""

from __future__ import annotations

from collections.abc import Callable

# A batch submitted without a weight takes one turn for each turn of a weight-1 batch.
DEFAULT_WEIGHT = 1.0
# Where positions start at a level where no job waits.
EMPTY_LEVEL_START = 0.0
# Without fair share, a batch starts this far after the last position waiting at its level.
FIFO_GAP = 1.0


def frontier(lowest_waiting: float | None) -> float:
    """Fair share: a batch joining a level starts at the lowest position of the ready jobs
    waiting there (the one served next), so it takes turns with them instead of going last."""
    return EMPTY_LEVEL_START if lowest_waiting is None else lowest_waiting


def after_last(highest_waiting: float | None) -> float:
    """No fair share: a batch starts after the last position waiting at its level (first
    submitted, first served between batches)."""
    return EMPTY_LEVEL_START if highest_waiting is None else highest_waiting + FIFO_GAP


def rebase_shift(first_position: float, new_frontier: float) -> float:
    """What to add to the positions of a batch moved to another level: its first waiting job
    lands on the new level's frontier, the others keep their spacing and order."""
    return new_frontier - first_position


class BatchPositions:
    """The fair positions of the jobs of one batch being submitted.

    The batch's start at a level is read once, at its first job there, and kept: its jobs at
    the level stay evenly spaced however long the submit takes. ``read_frontier`` and
    ``read_queue_end`` give a level's ``frontier`` and ``after_last`` from the database.
    """

    def __init__(
        self,
        weight: float | None,
        *,
        fair_share: bool,
        read_frontier: Callable[[str, int], float],
        read_queue_end: Callable[[str, int], float],
    ) -> None:
        self._weight = weight or DEFAULT_WEIGHT
        self._read_start = read_frontier if fair_share else read_queue_end
        self._starts: dict[tuple[str, int], float] = {}

    def position(self, group: str, priority: int, seq: int) -> float:
        """The fair position of the batch's job number ``seq`` (0-based, over all its lines)."""
        level = (group, priority)
        start = self._starts.get(level)
        if start is None:
            start = self._starts[level] = self._read_start(group, priority)
        return start + seq / self._weight
