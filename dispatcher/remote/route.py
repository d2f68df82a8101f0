"""Which route a submitted batch takes: realtime calls, or the providers' batch APIs.

``auto`` takes the provider batch route when waiting is what the batch asked for: a priority
of ``low`` or ``bulk`` and a completion window of at least 24 hours (the providers' own
turnaround), for the model groups that have a deployment with a batch API. Lines of other
groups in the same batch run realtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from dispatcher.deployments import Deployments
from dispatcher.errors import UsageError
from dispatcher.intake.validate import EMBEDDINGS
from dispatcher.priority import PRIORITY_NAMES
from dispatcher.store.tables import Route

AUTO_MIN_PRIORITY = PRIORITY_NAMES["low"]  # low (7) to bulk (9)
AUTO_MIN_WINDOW_S = 24 * 3600.0


@dataclass(frozen=True)
class RouteChoice:
    route: str  # Route.REALTIME or Route.PROVIDER_BATCH
    groups: frozenset[str]  # groups whose lines go through provider batches

    def holds(self, group: str) -> bool:
        return self.route == Route.PROVIDER_BATCH and group in self.groups


REALTIME = RouteChoice(Route.REALTIME, frozenset())


def parse_via(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip().lower().replace("_", "-")
    if text not in Route.CHOICES:
        raise UsageError(f"--via: '{value}' is not a route; use {', '.join(Route.CHOICES)}")
    return text


def batch_capable_groups(deployments: Deployments) -> set[str]:
    return {group for group, members in deployments.by_group.items() if any(d.batch_api for d in members)}


def choose_route(
    via: str, *, priority: int, window_s: float, deployments: Deployments, groups: Iterable[str],
    endpoint: str | None = None,
) -> RouteChoice:
    """The route of a batch whose lines use ``groups``; UsageError when ``provider-batch`` was
    asked for and a group cannot take it (which group, and what to do)."""
    if via == Route.REALTIME:
        return REALTIME
    used = set(groups)
    capable = batch_capable_groups(deployments)
    if endpoint == EMBEDDINGS:  # Anthropic has no embeddings, so only OpenAI-shaped batch APIs
        capable = {g for g in capable if any(d.batch_api and d.adapter != "anthropic" for d in deployments.group(g))}
    if via == Route.PROVIDER_BATCH:
        missing = sorted(used - capable)
        if missing:
            raise UsageError(
                f"--via provider-batch: model group(s) {', '.join(repr(g) for g in missing)} have no "
                "deployment with a batch API (openai/, azure/ and anthropic/ deployments have one; set "
                "litellm_params.batch_api: true for an OpenAI-compatible endpoint that has one), or "
                "submit with --via realtime or auto"
            )
        return RouteChoice(Route.PROVIDER_BATCH, frozenset(used))
    # auto
    if priority < AUTO_MIN_PRIORITY or window_s < AUTO_MIN_WINDOW_S or not (used & capable):
        return REALTIME
    return RouteChoice(Route.PROVIDER_BATCH, frozenset(used & capable))
