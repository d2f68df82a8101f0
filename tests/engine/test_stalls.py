"""Time a process spent stopped is not a provider timeout.

A real call to the mock provider (answers in 0.2 s, timeout 1 s) while the event loop is
blocked for 2 s, as SIGSTOP, a paused VM or a long GC pause would block it: the answer
arrives meanwhile, but on waking the deadline has passed too.
"""

from __future__ import annotations

import asyncio
import time

from dispatcher.config.loader import load_config
from dispatcher.deployments import build_deployments
from dispatcher.engine.execution import JobRunner
from dispatcher.engine.fallbacks import FallbackPolicy
from dispatcher.engine.retry import RetryPolicy
from dispatcher.engine.stalls import StallWatch
from dispatcher.providers.provider_set import ProviderSet
from dispatcher.store.jobs import ClaimedJob
from dispatcher.store.tables import JobStatus
from tests.conftest import openai_deployment


def claimed_job() -> ClaimedJob:
    return ClaimedJob(
        id=1, batch_id="b", custom_id="c", model_group="chat", priority=5,
        body='{"messages":[{"role":"user","content":"hi"}],"max_tokens":4}', claim=1, attempts=0,
        retries=0, est_prompt_tokens=5, est_completion_tokens=4, groups_tried=None, created_at=0.0,
    )


async def call_through_a_stall(config) -> object:
    deployments = build_deployments(config)
    providers = ProviderSet(deployments, 4)
    stalls = StallWatch()
    watch = asyncio.create_task(stalls.run())
    runner = JobRunner(
        providers=providers, retry_policy=RetryPolicy(config.router_settings, config.dispatcher_settings),
        fallback_policy=FallbackPolicy(config.router_settings), worker_id="w", stalls=stalls,
    )
    await asyncio.sleep(0.3)  # the watch runs (parked until the call starts)
    asyncio.get_running_loop().call_later(0.05, time.sleep, 2.0)  # the process "stops" for 2 s
    try:
        return await runner.run(claimed_job(), deployments.by_group["chat"][0])
    finally:
        watch.cancel()
        await providers.aclose()


def test_a_call_that_spanned_a_stall_is_requeued_not_counted_as_a_timeout(
    start_mock_provider, write_config
):
    provider = start_mock_provider(latency_ms=200)
    path = write_config([("chat", openai_deployment(provider, timeout=1.0))], router={"num_retries": 0})
    config, _ = load_config(path)
    outcome = asyncio.run(call_through_a_stall(config))
    assert provider.stats()["requests"] == 1
    # Before: a ProviderTimeoutError, the job failed (no retries left) and the deployment
    # recorded a failure towards its cooldown.
    assert outcome.provider_error is None
    assert outcome.status == JobStatus.QUEUED and outcome.retries == 0
    assert outcome.attempt.error_class == "WorkerStalled"


def test_an_idle_watch_does_not_tick_and_idle_time_is_no_stall():
    async def scenario():
        stalls = StallWatch()
        watch = asyncio.create_task(stalls.run())
        try:
            await asyncio.sleep(0.05)
            parked_tick = stalls._last_tick
            time.sleep(1.6)  # blocked while idle: longer than TICK_S + threshold_s
            await asyncio.sleep(0.3)
            assert stalls._last_tick == parked_tick  # no call in flight: no wake-ups
            stalls.call_started()
            began = time.monotonic()
            await asyncio.sleep(0.6)  # ticks again
            assert stalls._last_tick > began
            assert not stalls.stalled_between(began, time.monotonic())
            time.sleep(1.6)  # blocked while the call is in flight: a stall
            ended = time.monotonic()
            assert stalls.stalled_between(began, ended)
            stalls.call_ended()
        finally:
            watch.cancel()

    asyncio.run(scenario())
