"""Scheduling: which waiting job runs first, and which booked call sends first.

**Priority levels** (``dispatcher/priority.py``). A job's priority runs from 0 (most urgent)
to 9; the names urgent=0, high=2, normal=5, low=7 and bulk=9 are accepted wherever a number
is. A batch has one priority and any line may set its own. Priorities are strict: within a
model group, no job is claimed while a ready job of a more urgent level waits.

**Fair positions** (``fair.py``). Within one (model group, priority) level, batches take
turns. Each job gets a fair position (the ``fair_key`` column): where its batch starts at
that level plus the job's place in the batch divided by the batch's weight. A batch starts
at the level's frontier, the lowest position still waiting there, so it interleaves with the
batches already waiting instead of queueing behind them; a weight of 3 spaces its positions
a third apart, which gives it three turns for each turn of a weight-1 batch (weighted
round-robin), and inside a batch the jobs keep their submit order. With ``fair_share: false``
a batch starts after the last position waiting (first submitted, first served). A batch moved
to another priority keeps its spacing and is shifted so that its first waiting job lands on
the new level's frontier.

**Claim order** (``order.py``). A worker claims a group's ready jobs by ``CLAIM_ORDER``:
priority, then fair position, then id (insert order). Capacity is granted before jobs are
chosen, so this order also holds at the rate-limit gate. The jobs of one claim take the
claim's granted send times in ``start_order``: the most urgent first, then by id.

**Urgent moves** (``urgent.py``). Under a saturated rate limit a worker books send times up
to the lookahead ahead. An urgent call need not wait behind them: ``BookedCalls`` lets it
take the earliest send time this worker booked for a less urgent call of the same
deployment, which takes the urgent call's later time in exchange.

This package decides; it reads nothing. The SQL stays in ``store/``: the claim
(``store/jobs.py`` ``_claim_statement``), the frontier and queue-end reads (``fair_frontier``,
``queue_end``) and the re-basing update (``store/batches.py`` ``reprioritize``). Submit
assigns positions through ``fair.BatchPositions`` (``client/submit.py``).
"""
