"""Fair positions: where a batch starts at a level, how its weight spaces its jobs, and how a
batch moved to another level is re-based."""

from __future__ import annotations

import pytest

from dispatcher.scheduling.fair import BatchPositions, after_last, frontier, rebase_shift


def never_read(group: str, priority: int) -> float:
    raise AssertionError(f"level ({group}, {priority}) read the wrong way")


def test_a_level_where_nothing_waits_starts_at_zero_else_at_the_frontier_or_after_the_last():
    assert frontier(None) == 0.0 and after_last(None) == 0.0
    assert frontier(3.25) == 3.25  # take turns with the batch served next
    assert after_last(3.25) == 4.25  # first submitted, first served


def test_positions_are_the_level_start_plus_the_place_over_the_weight_read_once_per_level():
    reads = []

    def read_frontier(group: str, priority: int) -> float:
        reads.append((group, priority))
        return {5: 10.0, 0: 0.0}[priority]

    positions = BatchPositions(4.0, fair_share=True, read_frontier=read_frontier,
                               read_queue_end=never_read)
    assert [positions.position("chat", 5, seq) for seq in range(3)] == [10.0, 10.25, 10.5]
    # A line of its own priority starts at that level; its place in the batch still counts.
    assert [positions.position("chat", 0, seq) for seq in (3, 4)] == [0.75, 1.0]
    assert positions.position("chat", 5, 5) == 11.25
    assert reads == [("chat", 5), ("chat", 0)]  # a start of 0.0 is kept too


@pytest.mark.parametrize("weight", [None, 1.0])
def test_without_fair_share_a_batch_of_weight_one_queues_after_the_last(weight):
    positions = BatchPositions(weight, fair_share=False, read_frontier=never_read,
                               read_queue_end=lambda group, priority: 7.0)
    assert [positions.position("chat", 5, seq) for seq in range(3)] == [7.0, 8.0, 9.0]


def test_a_moved_batch_starts_at_the_new_frontier_and_keeps_its_spacing():
    waiting = [3.0, 3.5, 4.0]
    for new_frontier in (10.0, 1.0):
        shift = rebase_shift(waiting[0], new_frontier)
        assert [key + shift for key in waiting] == [new_frontier, new_frontier + 0.5, new_frontier + 1.0]
