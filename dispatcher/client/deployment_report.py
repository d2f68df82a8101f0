"""What ``llm-dispatch models`` shows: each deployment's limits, prices and current use."""

from __future__ import annotations

from typing import Any

from dispatcher.backends import Backends
from dispatcher.config.schema import DispatcherConfig
from dispatcher.deployments import Deployments
from dispatcher.limits.spec import limit_specs
from dispatcher.pricing import price_for


def deployment_report(
    config: DispatcherConfig, deployments: Deployments, backends: Backends
) -> list[dict[str, Any]]:
    """One dict per deployment; live use (this minute, in flight) when ``backends`` can read
    the fleet's (Redis), none in embedded mode."""
    settings = config.dispatcher_settings
    specs = limit_specs(deployments, settings.rate_limits.headroom)
    live = backends.live_use(specs)
    rows = []
    for deployment in deployments.by_id.values():
        price = price_for(deployment)
        spec = specs[deployment.id]
        row = {
            "group": deployment.group,
            "deployment": deployment.id,
            "model": f"{deployment.provider}/{deployment.provider_model}",
            "api_base": deployment.api_base,
            "rpm": deployment.rpm,
            "tpm": deployment.tpm,
            "itpm": deployment.itpm,
            "otpm": deployment.otpm,
            # Per worker process (like LiteLLM's per-Router semaphore), not fleet-wide.
            "max_parallel_requests": deployment.max_parallel_requests
            or config.router_settings.default_max_parallel_requests,
            "limit_key": spec.key,
            "weight": deployment.weight,
            "timeout": deployment.timeout,
            "input_cost_per_token": price.input_per_token if price else None,
            "output_cost_per_token": price.output_per_token if price else None,
        }
        if deployment.id in live:
            usage, in_flight = live[deployment.id]
            row.update(
                requests_this_minute=usage.requests_this_minute,
                tokens_this_minute=usage.tokens_this_minute,
                in_flight=in_flight,
                paused_for_s=round(usage.paused_for_s, 3),
                booked_ahead_s=round(usage.backlog_s, 3),
            )
        rows.append(row)
    return rows

