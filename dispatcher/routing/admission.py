"""Admission: which deployment serves the next calls of a group, and when they may be sent.

The strategy orders the group's deployments; the limit backend reserves send times on the
first one whose rpm/tpm schedule (and any 429 pause) has room within the lookahead. Nothing
is claimed from SQL before capacity is granted, so the job that gets the capacity is always
the most urgent one at that moment, and a group with no capacity holds no worker slot.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from dispatcher.config.schema import RateLimitSettings, RouterSettings
from dispatcher.deployments import Deployment, Deployments
from dispatcher.limits.backend import Blocked, LimitBackend
from dispatcher.limits.calibration import TokenCalibration
from dispatcher.limits.spec import LimitSpec, limit_specs
from dispatcher.providers import errors as pe
from dispatcher.providers.base import Completion
from dispatcher.routing.budgets import Budgets
from dispatcher.routing.stats import RoutingStats
from dispatcher.routing.strategies import RoutingStrategy

log = logging.getLogger(__name__)

# When every deployment of a group is at max_parallel_requests, look again after this long
# even if no call end has said so.
PARALLEL_RECHECK_S = 1.0


@dataclass(slots=True)
class Grant:
    """Permission to send one call to ``deployment`` at ``send_at`` (local clock)."""

    deployment: Deployment
    spec: LimitSpec
    send_at: float
    tokens: int  # tokens reserved for this call


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
        self.specs = limit_specs(deployments, settings.headroom)
        self.budgets = Budgets(deployments, self._router, backend)
        self._local_pause: dict[str, float] = {}  # limit key -> until (429s seen here)
        self._local_cooldown: dict[str, float] = {}  # deployment id -> until
        # max_parallel_requests, per worker process like LiteLLM's per-Router semaphore:
        # grants held (booked, waiting or calling) per deployment, returned by ``done``.
        self._parallel_cap = {
            d.id: d.max_parallel_requests or self._router.default_max_parallel_requests
            for d in deployments.by_id.values()
        }
        self._held: collections.Counter[str] = collections.Counter()
        self.calibration = TokenCalibration()

    @property
    def horizon(self) -> float:
        return self._settings.lookahead_s

    async def acquire(self, group: str, count: int, tokens: int) -> list[Grant] | Blocked:
        """Up to ``count`` grants for calls of ``tokens`` each, or when to try again."""
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
            # Nothing fleet-wide to consult: choose per call, no round trip to the backend.
            chosen = []
            for _ in range(count):
                open_members = [d for d in members if self._room(d) > 0]
                if not open_members:
                    break
                deployment = self._strategy.order(open_members, self._stats)[0]
                chosen.append(self._hold(Grant(deployment, self.specs[deployment.id], now, tokens)))
            return chosen
        if not capped:
            return await self._reserve(members, count, tokens)
        # With max_parallel_requests a deployment may take fewer calls than its schedule has
        # room for: give back the rest and ask again among the deployments with places left.
        grants: list[Grant] = []
        for _ in range(len(members)):
            result = await self._reserve(members, count - len(grants), tokens)
            if isinstance(result, Blocked):
                return grants or result
            room = self._room(result[0].deployment) if result else 0
            if room < len(result):
                await self.release(result[room:])
                result = result[:room]
            grants += [self._hold(grant) for grant in result]
            members = [d for d in members if self._room(d) > 0]
            if len(grants) >= count or not members:
                break
        return grants

    async def _reserve(
        self, members: Sequence[Deployment], count: int, tokens: int
    ) -> list[Grant] | Blocked:
        """Book ``count`` send times on the first deployment (in strategy order) with room."""
        ordered = self._strategy.order(members, self._stats)
        result = await self._backend.reserve(
            [self.specs[d.id] for d in ordered], count, tokens, self.horizon,
            [d.id for d in ordered],
        )
        if isinstance(result, Blocked):
            return result
        deployment = ordered[result.candidate]
        spec = self.specs[deployment.id]
        return [
            Grant(deployment, spec, result.local_send_time(i), tokens)
            for i in range(len(result.send_times))
        ]

    def _room(self, deployment: Deployment) -> int:
        cap = self._parallel_cap[deployment.id]
        return cap - self._held[deployment.id] if cap else 1 << 30

    def _hold(self, grant: Grant) -> Grant:
        if self._parallel_cap[grant.deployment.id]:
            self._held[grant.deployment.id] += 1
        return grant

    def done(self, grants: Sequence[Grant]) -> None:
        """These grants are finished with (call ended, or never made): free their places."""
        for grant in grants:
            deployment = grant.deployment
            if not self._parallel_cap[deployment.id]:
                continue
            was_full = self._room(deployment) <= 0
            self._held[deployment.id] -= 1
            if was_full:
                self._on_room(deployment.group)

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
        result = await self.acquire(grant.deployment.group, 1, grant.tokens)
        if isinstance(result, Blocked):
            return result
        return result[0] if result else Blocked(time.time() + self._settings.default_pause_s)

    def _paused(self, members: Sequence[Deployment], now: float) -> bool:
        return any(self._local_pause.get(self.specs[d.id].key, 0.0) > now for d in members)

    async def release(self, grants: Sequence[Grant]) -> None:
        """Give back grants that were not used (fewer jobs were ready than capacity)."""
        corrections = [(g.spec, -1, -g.tokens) for g in grants if g.spec.limited]
        if corrections:
            await self._backend.adjust(corrections, self.horizon)

    def booking(self, deployment: Deployment, est_prompt: int, est_completion: int) -> int:
        """Tokens to book for a call on ``deployment`` (estimates scaled by what it counted)."""
        return self.calibration.booking(
            deployment.id, est_prompt, est_completion,
            completion_follows_usage=deployment.tpm_counts == "usage",
        )

    async def resize(self, grants: Sequence[Grant], needs: Sequence[int]) -> list[float]:
        """Fit each grant to its job's own token need; returns extra seconds each must wait.

        A job needing more tokens than reserved waits for the extra budget to refill, so the
        schedule's spacing still holds; one needing fewer gives the rest back.
        """
        corrections, delays = [], []
        for grant, need in zip(grants, needs):
            delta = need - grant.tokens
            grant.tokens = need
            delays.append(max(0, delta) * grant.spec.token_interval)
            if delta and grant.spec.token_interval:
                corrections.append((grant.spec, 0, delta))
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
            if error.counts_as_deployment_failure and not self._router.disable_cooldowns:
                await self.record_failure(grant.deployment)
            if not error.request_sent and spec.limited:
                await self._backend.adjust([(spec, -1, -grant.tokens)], self.horizon)
            return
        if completion is None or not spec.limited:
            return
        usage = completion.usage
        if usage is not None and spec.token_interval:
            self.calibration.observe(grant.deployment.id, est_prompt_tokens, est_completion_tokens, usage)
            if grant.deployment.tpm_counts == "usage":
                delta = usage.total_tokens - grant.tokens
            else:  # the provider counted prompt + max_tokens: only the prompt booking can be off
                delta = usage.prompt_tokens - (grant.tokens - est_completion_tokens)
            if delta:
                await self._backend.adjust([(spec, 0, delta)], self.horizon)
        info = completion.rate_limits
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

    async def record_failure(self, deployment: Deployment) -> None:
        cooldown = self._router.cooldown_time
        started = await self._backend.record_failure(
            deployment.id, self._router.allowed_fails, cooldown
        )
        if started:
            self._local_cooldown[deployment.id] = time.time() + cooldown
            self._on_cooldown(deployment.id)
            log.warning(
                "deployment %s failed more than %d times in a minute: cooling down for %gs",
                deployment.id, self._router.allowed_fails, cooldown,
            )

    async def pause(self, spec: LimitSpec, seconds: float) -> None:
        self._local_pause[spec.key] = max(self._local_pause.get(spec.key, 0.0), time.time() + seconds)
        await self._backend.pause(spec, seconds)
