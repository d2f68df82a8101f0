"""The adapters of one worker process, one per deployment, built from config."""

from __future__ import annotations

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
        return OpenAICompatibleProvider(deployment, pool)

    def get(self, deployment_id: str) -> Provider:
        return self._providers[deployment_id]

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
