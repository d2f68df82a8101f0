"""What ``llm-dispatch models`` shows: each deployment's limits, prices and current use."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dispatcher.config.schema import DispatcherConfig
from dispatcher.deployments import Deployments
from dispatcher.limits import keys
from dispatcher.limits.backend import LimitUsage
from dispatcher.limits.spec import limit_specs
from dispatcher.pricing import price_for
from dispatcher.routing.stats import REMOTE_STALE_AFTER_S


def deployment_report(config: DispatcherConfig, deployments: Deployments) -> list[dict[str, Any]]:
    """One dict per deployment; live use (this minute, in flight) only when Redis is configured."""
    settings = config.dispatcher_settings
    specs = limit_specs(deployments, settings.rate_limits.headroom)
    live: dict[str, tuple[LimitUsage, int]] = {}
    if settings.redis_url:
        live = asyncio.run(_read_live(settings.redis_url, settings.namespace, deployments, specs))
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


async def _read_live(url, namespace, deployments, specs):
    from dispatcher.limits.redis_backend import RedisLimitBackend

    backend = RedisLimitBackend(url, namespace)
    try:
        ids = list(deployments.by_id)
        usages = await backend.usage([specs[d] for d in ids])
        pipe = backend.client.pipeline(transaction=False)
        for deployment_id in ids:
            pipe.hgetall(keys.routing_hash(namespace, deployment_id))
        replies = await pipe.execute()
    finally:
        await backend.aclose()
    now = time.time()
    live = {}
    for deployment_id, usage, fields in zip(ids, usages, replies):
        in_flight = 0
        for raw in fields.values():
            parts = raw.decode().split("|")
            if len(parts) == 4 and now - float(parts[3]) <= REMOTE_STALE_AFTER_S:
                in_flight += int(parts[0])
        live[deployment_id] = (usage, in_flight)
    return live
