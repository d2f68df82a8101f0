"""Admission: which deployment serves the next calls of a group, and when they may be sent.

The strategy orders the group's deployments; the limit backend reserves send times on the
first one whose rpm/tpm/itpm/otpm schedules (and any 429 pause) have room within the
lookahead. Nothing is claimed from SQL before capacity is granted, so the job that gets the
capacity is always the most urgent one at that moment, and a group with no capacity holds no
worker slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from dispatcher.config.schema import RateLimitSettings, RouterSettings
from dispatcher.deployments import Deployment, Deployments
from dispatcher.limits import credit
from dispatcher.limits.backend import Blocked, Correction, LimitBackend
from dispatcher.limits.credit import Position
from dispatcher.limits.calibration import TokenCalibration
from dispatcher.limits.spec import LimitSpec, TokenBooking, limit_specs
from dispatcher.providers import errors as pe
from dispatcher.providers.base import Completion, Usage
from dispatcher.routing.budgets import Budgets
from dispatcher.routing.stats import RoutingStats
from dispatcher.routing.strategies import RoutingStrategy

log = logging.getLogger(__name__)

# When every deployment of a group is at max_parallel_requests, look again after this long
# even if no call end has said so.
PARALLEL_RECHECK_S = 1.0
# allowed_fails counts failures per minute; a deployment that answered within as long is up.
FAILURE_WINDOW_S = 60.0


@dataclass(slots=True)
class Grant:
    """Permission to send one call to ``deployment`` at ``send_at`` (local clock)."""

    deployment: Deployment
    spec: LimitSpec
    send_at: float
    tokens: int  # tokens reserved for this call
    input_tokens: int = 0  # the part of ``tokens`` that is input (itpm); the rest is output (otpm)
    # Its place in the key's counts, which a reply's rate-limit headers are read against.
    position: Position | None = None
    on_credit: bool = False  # booked on the provider's word of room, not at an even-pace time

    @property
    def output_tokens(self) -> int:
        return self.tokens - self.input_tokens


class Admission:
    def __init__(
        self,
        deployments: Deployments,
        backend: LimitBackend,
        strategy: RoutingStrategy,
        stats: RoutingStats,
        settings: RateLimitSettings,
        router: RouterSettings | None = None,
        on_cooldown: Callable[[str], None] | None = None,
        on_room: Callable[[str], None] | None = None,
    ):
        self._deployments = deployments
        self._backend = backend
        self._strategy = strategy
        self._stats = stats
        self._settings = settings
        self._router = router or RouterSettings()
        self._on_cooldown = on_cooldown or (lambda deployment_id: None)
        self._on_room = on_room or (lambda group: None)
        self.specs = limit_specs(
            deployments, settings.headroom, provider_headers=settings.provider_headers,
            urgent_reserve=settings.urgent_reserve,
        )
        self.budgets = Budgets(deployments, self._router, backend)
        self._local_pause: dict[str, float] = {}  # limit key -> until (429s seen here)
        self._local_cooldown: dict[str, float] = {}  # deployment id -> until
        self._last_answer: dict[str, float] = {}  # deployment id -> when a call last succeeded here
        # max_parallel_requests, per worker process like LiteLLM's per-Router semaphore, counts
        # the grants held (booked, waiting or calling) per deployment, returned by ``done``.
        self._parallel_cap = {
            d.id: d.max_parallel_requests or self._router.default_max_parallel_requests
            for d in deployments.by_id.values()
        }
        self._held = stats.held  # shared with the strategies (least-busy counts booked calls)
        self.calibration = TokenCalibration()
        # Calls with a place in a key's counts that ended, not yet counted out of its flight.
        self._ended: dict[LimitSpec, int] = {}
        self._counting_out: asyncio.Task | None = None

    @property
    def horizon(self) -> float:
        return self._settings.lookahead_s

    async def acquire(
        self, group: str, count: int, tokens: int, input_tokens: int = 0, urgent: bool = False
    ) -> list[Grant] | Blocked:
        """Up to ``count`` grants for calls of ``tokens`` each (``input_tokens`` of them input),
        or when to try again. ``urgent`` grants may take the room kept for urgent calls."""
        members = self._deployments.group(group)
        if not members:
            return []
        now = time.time()
        capped = [d for d in members if self._parallel_cap[d.id]]
        if capped:
            members = [d for d in members if self._room(d) > 0]
            if not members:  # ``done`` hints the group when a call ends; this is a backstop
                return Blocked(now + PARALLEL_RECHECK_S, "parallel")
            count = min(count, sum(self._room(d) for d in members))
        if self.budgets.any:
            affordable = [d for d in members if not self.budgets.exhausted_until(d, now)]
            if not affordable:
                resets = min(self.budgets.exhausted_until(d, now) for d in members)
                return Blocked(resets, "budget")
            members = affordable
        if (
            not any(self.specs[d.id].limited for d in members)
            and not self._paused(members, now)
            and self._router.disable_cooldowns
        ):
            # Nothing fleet-wide to consult: grant at once, no round trip to the backend.
            return [
                self._hold(Grant(deployment, self.specs[deployment.id], now, tokens, input_tokens))
                for deployment, n in self._split(members, count, tokens)
                for _ in range(min(n, self._room(deployment)))
            ]
        grants: list[Grant] = []
        # With max_parallel_requests a deployment may take fewer calls than its schedule has
        # room for: ask again among the deployments with places left.
        for _ in range(len(members)):
            booked = await self._book(members, count - len(grants), tokens, input_tokens, urgent)
            if isinstance(booked, Blocked):
                return grants or booked
            grants += booked
            members = [d for d in members if self._room(d) > 0]
            if len(grants) >= count or not capped or not members or not booked:
                break
        return grants

    def _split(self, members: Sequence[Deployment], count: int, tokens: int) -> list[tuple[Deployment, int]]:
        """How many of ``count`` calls each deployment gets, choosing for one call at a time.

        Each choice counts the calls chosen before it (as booked calls and tokens used), so
        least-busy and usage-based spread a batch of grants, and simple-shuffle draws each
        call at random, instead of the whole batch going to whichever came first.
        """
        if len(members) == 1:
            return [(members[0], count)]
        shares: dict[str, list] = {}
        used = self._stats.tokens_this_minute
        try:
            for _ in range(count):
                deployment = self._strategy.order(members, self._stats)[0]
                shares.setdefault(deployment.id, [deployment, 0])[1] += 1
                self._held[deployment.id] += 1
                used[deployment.id] = used.get(deployment.id, 0) + tokens
        finally:  # the real grants are counted by _hold
            for deployment_id, (_, n) in shares.items():
                self._held[deployment_id] -= n
                used[deployment_id] -= n * tokens
        return [(deployment, n) for deployment, n in shares.values()]

    async def _book(
        self, members: Sequence[Deployment], count: int, tokens: int, input_tokens: int, urgent: bool
    ) -> list[Grant] | Blocked:
        """Reserve send times for ``count`` calls, split among ``members`` by the strategy.

        Each share is asked first of its deployment, then of the others in strategy order, so
        a share whose deployment is full still lands where there is room.
        """
        grants: list[Grant] = []
        # A strategy may find its first choice worth a longer wait than the usual lookahead.
        wait_s = getattr(self._strategy, "wait_s", 0.0)
        for deployment, n in self._split(members, count, tokens):
            ordered = self._strategy.order(members, self._stats)
            ordered = [deployment] + [d for d in ordered if d is not deployment]
            result: list[Grant] | Blocked | None = None
            if wait_s > self.horizon:
                result = await self._reserve(ordered[:1], n, tokens, input_tokens, urgent, wait_s)
                ordered = ordered[1:]  # no room within wait_s: the others, at the usual horizon
            if (result is None or isinstance(result, Blocked)) and ordered:
                result = await self._reserve(ordered, n, tokens, input_tokens, urgent)
            if isinstance(result, Blocked):  # every candidate is full: so are later shares
                return grants or result
            room = self._room(result[0].deployment) if result else 0
            if room < len(result):  # the deployment cannot run them all at once
                self._count_ended(result[room:])
                await self.release(result[room:])
                result = result[:room]
            grants += [self._hold(grant) for grant in result]
        return grants

    async def _reserve(
        self, ordered: Sequence[Deployment], count: int, tokens: int, input_tokens: int,
        urgent: bool = False, horizon: float | None = None,
    ) -> list[Grant] | Blocked:
        """Book ``count`` send times on the first deployment in ``ordered`` with room."""
        result = await self._backend.reserve(
            [self.specs[d.id] for d in ordered], count, tokens, horizon or self.horizon,
            [d.id for d in ordered], input_tokens=input_tokens, urgent=urgent,
        )
        if isinstance(result, Blocked):
            return result
        deployment = ordered[result.candidate]
        spec = self.specs[deployment.id]
        return [
            Grant(
                deployment, spec, result.local_send_time(i), tokens, input_tokens,
                result.position(i), on_credit=i < result.credited,
            )
            for i in range(len(result.send_times))
        ]

    async def take_urgent_room(self, grant: Grant) -> Grant | None:
        """A grant at once for an urgent call booked later, from the room its deployment's
        provider said it has (the part kept for urgent calls included); None when there is
        none. The caller gives the old grant back when it gets one."""
        if not grant.spec.burst_s:
            return None
        result = await self._reserve(
            [grant.deployment], 1, grant.tokens, grant.input_tokens, urgent=True, horizon=1e-6
        )
        if isinstance(result, Blocked) or not result:
            return None
        if result[0].on_credit:
            return self._hold(result[0])
        self._count_ended(result)
        await self.release(result)  # an even-pace slot right now: the old booking is as good
        return None

    def _room(self, deployment: Deployment) -> int:
        cap = self._parallel_cap[deployment.id]
        return cap - self._held[deployment.id] if cap else 1 << 30

    def _hold(self, grant: Grant) -> Grant:
        deployment_id = grant.deployment.id
        self._held[deployment_id] += 1
        used = self._stats.tokens_this_minute  # refreshed from the fleet's counters every 0.5 s
        used[deployment_id] = used.get(deployment_id, 0) + grant.tokens
        return grant

    def done(self, grants: Sequence[Grant]) -> None:
        """These grants are finished with (call ended, or never made): free their places."""
        for grant in grants:
            deployment = grant.deployment
            was_full = self._room(deployment) <= 0
            self._held[deployment.id] -= 1
            if was_full:
                self._on_room(deployment.group)
        self._count_ended(grants)

    def _count_ended(self, grants: Sequence[Grant]) -> None:
        """Grants whose calls ended or were never made leave their keys' calls in flight."""
        for grant in grants:
            if grant.position is not None and grant.spec.burst_s:
                self._ended[grant.spec] = self._ended.get(grant.spec, 0) + 1
        if self._ended and self._counting_out is None:
            self._counting_out = asyncio.get_running_loop().create_task(self._count_out())

    async def _count_out(self) -> None:
        """Tell the fleet's schedule the calls ``done`` saw end are no longer in flight."""
        try:
            while self._ended:
                ended, self._ended = self._ended, {}
                await self._backend.finish(list(ended.items()))
        except Exception as exc:  # noqa: BLE001 - counted in flight a while longer: less credit, no harm
            log.debug("could not count %d calls out of flight: %s", len(self._ended), exc)
        finally:
            self._counting_out = None

    def pause_remaining(self, grant: Grant) -> float:
        """Seconds this worker knows the grant's deployment is paused or cooling down for."""
        until = max(
            self._local_pause.get(grant.spec.key, 0.0),
            self._local_cooldown.get(grant.deployment.id, 0.0),
        )
        return max(0.0, until - time.time())

    async def renew(self, grant: Grant) -> Grant | Blocked:
        """A fresh grant for a call whose booked send time fell inside a pause.

        The caller gives up the old grant (``done``) before asking.
        """
        result = await self.acquire(grant.deployment.group, 1, grant.tokens, grant.input_tokens)
        if isinstance(result, Blocked):
            return result
        return result[0] if result else Blocked(time.time() + self._settings.default_pause_s)

    def _paused(self, members: Sequence[Deployment], now: float) -> bool:
        return any(self._local_pause.get(self.specs[d.id].key, 0.0) > now for d in members)

    async def release(self, grants: Sequence[Grant]) -> None:
        """Give back grants that were not used (fewer jobs were ready than capacity)."""
        corrections = [_refund(g) for g in grants if g.spec.limited]
        if corrections:
            await self._backend.adjust(corrections, self.horizon)

    def booking(self, deployment: Deployment, est_prompt: int, est_completion: int) -> TokenBooking:
        """Tokens to book for a call on ``deployment`` (estimates scaled by what it counted)."""
        return self.calibration.booking(
            deployment.id, est_prompt, est_completion,
            completion_follows_usage=deployment.tpm_counts == "usage",
        )

    async def resize(self, grants: Sequence[Grant], needs: Sequence[TokenBooking]) -> list[float]:
        """Fit each grant to its job's own token need; returns extra seconds each must wait.

        A job needing more tokens than reserved waits for the extra token allowance to refill, so the
        schedule's spacing still holds; one needing fewer gives the rest back.
        """
        corrections: list[Correction] = []
        delays = []
        for grant, need in zip(grants, needs):
            spec = grant.spec
            delta = need.total - grant.tokens
            input_delta = need.input - grant.input_tokens
            output_delta = need.output - grant.output_tokens
            grant.tokens, grant.input_tokens = need.total, need.input
            if spec.splits_tokens:  # the schedule that refills last sets the wait
                delays.append(max(
                    0.0, delta * spec.token_interval, input_delta * spec.input_interval,
                    output_delta * spec.output_interval,
                ))
                if delta or input_delta or output_delta:
                    corrections.append((spec, 0, delta, input_delta, output_delta))
                continue
            delays.append(max(0, delta) * spec.token_interval)
            if delta and spec.token_interval:
                corrections.append((spec, 0, delta))
        if corrections:
            await self._backend.adjust(corrections, self.horizon)
        return delays

    async def settle(
        self,
        grant: Grant,
        *,
        completion: Completion | None,
        error: pe.ProviderError | None,
        est_prompt_tokens: int,
        est_completion_tokens: int,
        cost: float | None = None,
    ) -> None:
        """Correct the reservation by what the call really cost; pause on 429; count spend."""
        spec = grant.spec
        if cost:
            await self.budgets.record(grant.deployment, cost)
        if error is not None:
            if isinstance(error, pe.RateLimitError):
                await self.pause(spec, error.retry_after or self._settings.default_pause_s)
            allowed_fails = self._cooldown_rule(grant.deployment, error)
            if allowed_fails is not None:
                await self.record_failure(grant.deployment, allowed_fails)
            if not error.request_sent and spec.limited:
                await self._backend.adjust([_refund(grant)], self.horizon)
            return
        if completion is None:
            return
        self._last_answer[grant.deployment.id] = time.time()
        if not spec.limited:
            return
        usage = completion.usage
        if usage is not None and (spec.token_interval or spec.splits_tokens):
            self.calibration.observe(grant.deployment.id, est_prompt_tokens, est_completion_tokens, usage)
            correction = _usage_correction(grant, usage, est_completion_tokens)
            if correction is not None:
                await self._backend.adjust([correction], self.horizon)
        info = completion.rate_limits
        if info is not None and grant.position is not None:
            word = credit.read_word(spec, grant.position, credit.CallSize(grant.tokens, grant.input_tokens), info)
            if word is not None:
                await self._backend.observe(spec, word)
        if info is not None:
            # The key is also used elsewhere when the provider has less left than we think.
            if info.remaining_requests == 0 and info.reset_requests_s:
                await self.pause(spec, info.reset_requests_s)
            elif (
                info.remaining_tokens is not None
                and info.remaining_tokens < grant.tokens
                and info.reset_tokens_s
            ):
                await self.pause(spec, info.reset_tokens_s)

    def _cooldown_rule(self, deployment: Deployment, error: pe.ProviderError) -> int | None:
        """The allowed_fails this failure counts against toward a cooldown; None: it does not."""
        if self._router.disable_cooldowns:
            return None
        alone = len(self._deployments.group(deployment.group)) == 1
        if error.deployment_specific and not alone:
            # Its key or model is wrong (or its key variable unset): no use waiting for
            # allowed_fails while the group's other deployments can take the calls.
            return 0
        if not error.counts_as_deployment_failure:
            return None
        if alone and error.retryable:
            # As LiteLLM does, the only deployment of a group cools down only when it looks
            # down (every call failing), not when it is flaky: its calls have nowhere else to
            # go, and retries already wait their backoff (a 429 pauses it in any case).
            answered = self._last_answer.get(deployment.id, 0.0)
            if answered > time.time() - FAILURE_WINDOW_S:
                return None
        return self._router.allowed_fails

    async def record_failure(self, deployment: Deployment, allowed_fails: int | None = None) -> None:
        cooldown = self._router.cooldown_time
        allowed = self._router.allowed_fails if allowed_fails is None else allowed_fails
        started = await self._backend.record_failure(deployment.id, allowed, cooldown)
        if started:
            self._local_cooldown[deployment.id] = time.time() + cooldown
            self._on_cooldown(deployment.id)
            log.warning(
                "deployment %s failed more than %d times in a minute: cooling down for %gs",
                deployment.id, allowed, cooldown,
            )

    async def pause(self, spec: LimitSpec, seconds: float) -> None:
        self._local_pause[spec.key] = max(self._local_pause.get(spec.key, 0.0), time.time() + seconds)
        await self._backend.pause(spec, seconds)


def _refund(grant: Grant) -> Correction:
    """The correction giving back an unused grant's booking."""
    if grant.spec.splits_tokens:
        return (grant.spec, -1, -grant.tokens, -grant.input_tokens, -grant.output_tokens)
    return (grant.spec, -1, -grant.tokens)


def _usage_correction(grant: Grant, usage: Usage, est_completion_tokens: int) -> Correction | None:
    """How far a call's booking was from what the provider counted; None when it was right."""
    if grant.deployment.tpm_counts == "usage":
        delta = usage.total_tokens - grant.tokens
    else:  # the provider counted prompt + max_tokens against tpm: only the prompt booking can be off
        delta = usage.prompt_tokens - (grant.tokens - est_completion_tokens)
    if not grant.spec.splits_tokens:
        return (grant.spec, 0, delta) if delta else None
    # itpm and otpm count what the call used (Anthropic books max_tokens against otpm while a
    # call runs and corrects it by the output at its end).
    input_delta = usage.prompt_tokens - grant.input_tokens
    output_delta = usage.completion_tokens - grant.output_tokens
    if not (delta or input_delta or output_delta):
        return None
    return (grant.spec, 0, delta, input_delta, output_delta)
