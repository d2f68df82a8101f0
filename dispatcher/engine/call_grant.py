"""One claimed job's grant: its place on a deployment and its booked send time.

The rate-limit wait, read top to bottom:

1. ``Admission.acquire`` (routing/admission.py) books send times for a group's next calls on
   a deployment whose rpm/tpm schedule (and itpm/otpm: input and output tokens apart) has
   room within the lookahead (the limit backend's ``reserve``: the ``RESERVE`` Lua script in
   Redis, or its in-process twin), or at once where the provider's rate-limit headers said
   it has room (limits/credit.py). A group without room is parked until the time the
   backend names (``ClaimLoop``); no job is claimed for it.
2. The claim loop claims one job per grant and fits each grant to its job's token need
   (``Admission.resize``: a bigger job also waits for its extra tokens).
3. ``CallGrant.due`` sleeps until the booked send time; an urgent call first takes the room
   kept for urgent calls, if its provider said it has some (``Admission.take_urgent_room``).
   Meanwhile a more urgent call of the same deployment may take this one's earlier time, or
   this one a less urgent call's (scheduling: ``BookedCalls.move_forward``). If a 429 paused the deployment meanwhile, or
   the process woke too late to keep the schedule, it gives its place up, waits the pause
   out and books again.
4. After the call, ``CallGrant.settle`` corrects the booking by what the provider counted
   (itpm and otpm by the usage's prompt and completion tokens) and pauses the deployment on a
   429 (``Admission.settle``); a call not made gives its booking back (``CallGrant.release``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from dispatcher.deployments import Deployment
from dispatcher.priority import URGENT_PRIORITY_MAX
from dispatcher.scheduling.urgent import MIN_GAIN_S, BookedCall, BookedCalls
from dispatcher.engine.counters import EngineStats
from dispatcher.engine.outcomes import Outcome
from dispatcher.limits.backend import Blocked
from dispatcher.routing.admission import Admission, Grant
from dispatcher.store.jobs import ClaimedJob

log = logging.getLogger(__name__)


class CallGrant:
    """Created by the claim loop for one job; the job's call then drives it: ``await due()``,
    then ``settle(...)`` after a call or ``release()`` when none was made. Holds a place on
    its deployment until then (``close`` frees it on any other way out)."""

    def __init__(
        self, grant: Grant, *, priority: int, delay: float, admission: Admission,
        booked: BookedCalls, stats: EngineStats, late_tolerance_s: float,
    ):
        self._grant = grant
        self._held: Grant | None = grant  # None while booking again
        self._priority = priority
        self._delay = delay  # extra wait for tokens beyond the booking (Admission.resize)
        self._admission = admission
        self._booked = booked
        self._stats = stats
        self._late_tolerance_s = late_tolerance_s

    @property
    def deployment(self) -> Deployment:
        return self._grant.deployment

    async def due(self) -> None:
        """Return when the call may be sent, on the deployment ``self.deployment`` names then."""
        await self._take_urgent_room()
        while True:
            await self._sleep_until_booked_time()
            grant = self._grant
            paused = self._admission.pause_remaining(grant)
            # A call on the provider's word of room crowds nobody when it goes a little late.
            late = time.time() - (grant.send_at + self._delay) > self._late_tolerance_s and not grant.on_credit
            if paused <= 0 and not (late and grant.spec.limited):
                return
            # Sending now would go into a 429 pause, or crowd the calls booked after this one.
            self.close()
            if paused > 0:
                await asyncio.sleep(paused)
            await self._book_again()

    async def _take_urgent_room(self) -> None:
        """An urgent call booked later takes the room its provider says it has, if any."""
        grant = self._grant
        if (
            self._priority > URGENT_PRIORITY_MAX
            or not grant.spec.burst_s
            or grant.on_credit
            or grant.send_at + self._delay - time.time() < MIN_GAIN_S
        ):
            return
        taken = await self._admission.take_urgent_room(grant)
        if taken is None:
            return
        self._admission.done([grant])
        await self._admission.release([grant])
        self._grant = self._held = taken
        self._delay = 0.0
        self._stats.moved_forward += 1

    async def _sleep_until_booked_time(self) -> None:
        grant = self._grant
        if not grant.spec.limited:
            if (wait := grant.send_at + self._delay - time.time()) > 0:
                await asyncio.sleep(wait)
            return
        call = BookedCall(self._priority, grant, self._delay)
        if self._booked.move_forward(call):
            self._stats.moved_forward += 1
        self._booked.add(call)
        try:
            # Re-read the due time after each sleep: another call may have swapped slots.
            while (wait := call.due - time.time()) > 0:
                await asyncio.sleep(wait)
        finally:
            self._booked.discard(call)

    async def _book_again(self) -> None:
        renewed = await self._admission.renew(self._grant)
        while isinstance(renewed, Blocked):
            await asyncio.sleep(max(0.01, renewed.until - time.time()))
            renewed = await self._admission.renew(self._grant)
        self._grant = self._held = renewed
        self._delay = 0.0
        self._stats.rebooked += 1

    async def settle(self, job: ClaimedJob, outcome: Outcome) -> None:
        """The call was made: correct the booking by what it cost, pause on a 429, free the place."""
        try:
            await self._admission.settle(
                self._grant,
                completion=outcome.completion,
                error=outcome.provider_error,
                est_prompt_tokens=job.est_prompt_tokens,
                est_completion_tokens=job.est_completion_tokens,
                cost=outcome.attempt.cost if outcome.attempt is not None else None,
            )
        except Exception as exc:  # noqa: BLE001 - the result matters more than the bookkeeping
            log.warning("could not settle the rate-limit reservation of job %s: %s", job.id, exc)
        finally:
            self.close()

    async def release(self) -> None:
        """No call was made: give the booked send time back and free the place."""
        try:
            await self._admission.release([self._grant])
        finally:
            self.close()

    def close(self) -> None:
        """Free the place on the deployment, once (a no-op after settle or release)."""
        if self._held is not None:
            self._admission.done([self._held])
            self._held = None
