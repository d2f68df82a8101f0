"""Budgets: USD a provider (``provider_budget_config``) or a deployment (``max_budget``) may
spend per period, fleet-wide. (A batch's ``max_cost`` is its cost cap, not a budget: see
``dispatcher.store.jobs``.)

Spend is counted fleet-wide in the limit backend, per calendar-aligned period (a "1d" budget
resets at 00:00 UTC, "30d" every 30 days from the Unix epoch). Admission skips a deployment
whose own budget, or its provider's, is spent; each worker refreshes its view every half
second and adds its own spending at once, so a cap is passed by at most the calls in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dispatcher.config.schema import RouterSettings
from dispatcher.deployments import Deployment, Deployments
from dispatcher.durations import parse_duration
from dispatcher.limits.backend import LimitBackend


@dataclass(frozen=True, slots=True)
class Budget:
    """One provider's or deployment's limit of USD per calendar-aligned period."""

    scope: str  # "provider:<name>" or "deployment:<id>"
    limit_usd: float
    period_s: float

    def period_end(self, now: float) -> float:
        return (now // self.period_s + 1) * self.period_s


class Budgets:
    """Every budget that applies to each deployment, and this worker's view of their spend."""

    def __init__(self, deployments: Deployments, router: RouterSettings, backend: LimitBackend):
        self._backend = backend
        self._by_deployment: dict[str, list[Budget]] = {}
        for deployment in deployments.by_id.values():
            budgets = []
            provider = router.provider_budget_config.get(deployment.provider)
            if provider is not None:
                budgets.append(Budget(f"provider:{deployment.provider}", provider.budget_limit,
                                      parse_duration(provider.time_period)))
            if deployment.max_budget:
                budgets.append(Budget(f"deployment:{deployment.id}", deployment.max_budget,
                                      parse_duration(deployment.budget_duration or "30d")))
            self._by_deployment[deployment.id] = budgets
        self._all = sorted({b for budgets in self._by_deployment.values() for b in budgets},
                           key=lambda b: b.scope)
        self._spent: dict[str, float] = {}

    @property
    def any(self) -> bool:
        return bool(self._all)

    def exhausted_until(self, deployment: Deployment, now: float | None = None) -> float:
        """0 when the deployment may spend; else when its exhausted budget resets."""
        now = time.time() if now is None else now
        until = 0.0
        for budget in self._by_deployment.get(deployment.id, ()):
            if self._spent.get(budget.scope, 0.0) >= budget.limit_usd:
                until = max(until, budget.period_end(now))
        return until

    async def record(self, deployment: Deployment, cost: float | None) -> None:
        budgets = self._by_deployment.get(deployment.id)
        if not budgets or not cost:
            return
        for budget in budgets:
            self._spent[budget.scope] = self._spent.get(budget.scope, 0.0) + cost
        await self._backend.add_spend([(b.scope, b.period_s) for b in budgets], cost)

    async def refresh(self) -> None:
        """Read the fleet's spending for every budget (one round trip)."""
        if not self._all:
            return
        values = await self._backend.spend([(b.scope, b.period_s) for b in self._all])
        for budget, value in zip(self._all, values):
            self._spent[budget.scope] = value

    def report(self) -> list[dict]:
        return [
            {"scope": b.scope, "limit_usd": b.limit_usd, "period_s": b.period_s,
             "spent_usd": round(self._spent.get(b.scope, 0.0), 10)}
            for b in self._all
        ]
