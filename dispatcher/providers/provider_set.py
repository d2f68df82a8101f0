"""The adapters of one worker process, one per deployment, built from config."""

from __future__ import annotations

from typing import Any, Callable

from dispatcher.deployments import Deployment, Deployments
from dispatcher.providers.base import Provider
from dispatcher.providers.http import EndpointPool


class ProviderSet:
    """One adapter per deployment for this process; deployments at one endpoint share a pool."""

    def __init__(self, deployments: Deployments, max_in_flight: int):
        self._pools: dict[str, EndpointPool] = {}
        self._providers: dict[str, Provider] = {}
        for deployment in deployments.by_id.values():
            self._providers[deployment.id] = self._build(deployment, max_in_flight)

    def _build(self, deployment: Deployment, max_in_flight: int) -> Provider:
        if deployment.adapter == "mock":
            from dispatcher.providers.mock.adapter import MockProvider

            return MockProvider(deployment)
        from dispatcher.providers.openai.adapter import OpenAICompatibleProvider

        base = deployment.api_base or ""
        pool = self._pools.get(base)
        if pool is None:
            pool = self._pools[base] = EndpointPool(max_in_flight)
        if deployment.adapter == "anthropic":
            from dispatcher.providers.anthropic.adapter import AnthropicProvider

            return AnthropicProvider(deployment, pool)
        if deployment.adapter == "azure":
            from dispatcher.providers.azure.adapter import azure_provider

            return azure_provider(deployment, pool)
        if deployment.adapter == "gemini":
            from dispatcher.providers.gemini.adapter import gemini_provider

            return gemini_provider(deployment, pool)
        return OpenAICompatibleProvider(deployment, pool)

    def get(self, deployment_id: str) -> Provider:
        return self._providers[deployment_id]

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()


RequestCheck = Callable[..., "str | None"]
CHAT_COMPLETIONS = "/v1/chat/completions"


def request_checks(deployments: Deployments) -> dict[str, RequestCheck]:
    """Submit-time checks of a request, for the model groups served by an adapter that
    translates requests (Anthropic): group -> check(body, endpoint) returning the problem or
    None. Such a group serves chat completions only (Anthropic has no embeddings API).

    A group absent from the result takes any body its OpenAI-compatible endpoints take.
    """
    from dispatcher.providers.anthropic.request import request_problem

    checks: dict[str, RequestCheck] = {}
    for group, members in deployments.by_group.items():
        translated = [d for d in members if d.adapter == "anthropic"]
        if translated:
            checks[group] = _first_problem(translated, request_problem)
    return checks


def _first_problem(members: list[Deployment], problem_of: Callable[[dict[str, Any]], "str | None"]) -> RequestCheck:
    def check(body: dict[str, Any], endpoint: str = CHAT_COMPLETIONS) -> str | None:
        if endpoint != CHAT_COMPLETIONS:
            served_by = members[0]
            return (f"url: {endpoint} is not served by model group '{served_by.group}' "
                    f"({served_by.provider}/{served_by.provider_model}): Anthropic serves chat "
                    "completions only")
        for deployment in members:
            problem = problem_of({**deployment.body_defaults, **body} if deployment.body_defaults else body)
            if problem is not None:
                return f"{problem} (model group served by {deployment.provider}/{deployment.provider_model})"
        return None

    return check
