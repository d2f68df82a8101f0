"""Admission: capacity on the first deployment with room, pauses after 429, token fitting."""

from __future__ import annotations

import asyncio
import time

from dispatcher.config.loader import parse_config
from dispatcher.config.schema import RateLimitSettings
from dispatcher.deployments import build_deployments
from dispatcher.limits.backend import Blocked
from dispatcher.limits.memory_backend import MemoryLimitBackend
from dispatcher.limits.spec import TokenBooking
from dispatcher.providers import errors as pe
from dispatcher.providers.base import Completion, RateLimitInfo, Usage
from dispatcher.routing.admission import Admission
from dispatcher.routing.stats import RoutingStats
from dispatcher.routing.strategies import build_strategy


def admission_for(*params: dict, strategy: str = "cost-based-routing", **settings) -> Admission:
    config = parse_config({"model_list": [
        {"model_name": "chat", "litellm_params": {"model": "openai/m", "api_base": "http://x", **p},
         "model_info": {"id": f"d{i}"}}
        for i, p in enumerate(params)
    ]})
    # cost-based here only gives a known order: no waiting for the cheapest (max_wait_s 0).
    return Admission(
        build_deployments(config), MemoryLimitBackend(), build_strategy(strategy, {"max_wait_s": 0}),
        RoutingStats(), RateLimitSettings(headroom=0.0, lookahead_s=settings.get("lookahead_s", 0.0)),
    )


def test_unlimited_groups_are_granted_at_once_without_the_backend():
    admission = admission_for({})
    grants = asyncio.run(admission.acquire("chat", 5, 100))
    assert len(grants) == 5 and all(g.send_at <= time.time() for g in grants)


def test_capacity_moves_to_the_next_deployment_when_the_preferred_one_is_full():
    cheap = {"rpm": 60, "input_cost_per_token": 1e-7, "output_cost_per_token": 1e-7}
    dear = {"rpm": 60, "input_cost_per_token": 1e-5, "output_cost_per_token": 1e-5}
    admission = admission_for(cheap, dear)

    async def scenario():
        first = await admission.acquire("chat", 1, 10)
        second = await admission.acquire("chat", 1, 10)
        third = await admission.acquire("chat", 1, 10)
        return first, second, third

    first, second, third = asyncio.run(scenario())
    assert first[0].deployment.id == "d0"  # cheapest while it has room
    assert second[0].deployment.id == "d1"  # then the other one
    assert isinstance(third, Blocked) and third.until - time.time() > 0.5  # both full


def test_a_429_pauses_the_deployment_for_the_time_the_provider_asked():
    admission = admission_for({"rpm": 6000})

    async def scenario():
        [grant] = await admission.acquire("chat", 1, 10)
        error = pe.RateLimitError("slow down", status_code=429, retry_after=3.0)
        await admission.settle(grant, completion=None, error=error, est_prompt_tokens=5, est_completion_tokens=5)
        return grant, await admission.acquire("chat", 1, 10)

    grant, after = asyncio.run(scenario())
    assert isinstance(after, Blocked) and 2.5 < after.until - time.time() <= 3.0
    assert 2.5 < admission.pause_remaining(grant) <= 3.0


def test_provider_saying_nothing_remains_pauses_until_its_reset():
    admission = admission_for({"rpm": 6000})

    async def scenario():
        [grant] = await admission.acquire("chat", 1, 10)
        completion = Completion(200, b"{}", Usage(5, 5, 10), rate_limits=RateLimitInfo(
            remaining_requests=0, remaining_tokens=1000, reset_requests_s=2.0, reset_tokens_s=0.1))
        await admission.settle(grant, completion=completion, error=None, est_prompt_tokens=5, est_completion_tokens=5)
        return await admission.acquire("chat", 1, 10)

    after = asyncio.run(scenario())
    assert isinstance(after, Blocked) and 1.5 < after.until - time.time() <= 2.0


def test_jobs_needing_more_tokens_than_reserved_wait_for_the_extra():
    admission = admission_for({"tpm": 60000})  # 1,000 tokens a second

    async def scenario():
        grants = await admission.acquire("chat", 1, 100)
        return await admission.resize(grants, [TokenBooking(input=100, output=500)])

    [delay] = asyncio.run(scenario())
    assert abs(delay - 0.5) < 1e-6  # 500 more tokens take half a second to refill


def test_calls_that_never_reached_the_provider_give_their_capacity_back():
    admission = admission_for({"rpm": 60})  # one a second

    async def scenario():
        [grant] = await admission.acquire("chat", 1, 10)
        refused = await admission.acquire("chat", 1, 10)
        error = pe.ProviderUnreachableError("cannot connect")
        await admission.settle(grant, completion=None, error=error, est_prompt_tokens=5, est_completion_tokens=5)
        return refused, await admission.acquire("chat", 1, 10)

    refused, again = asyncio.run(scenario())
    assert isinstance(refused, Blocked)
    assert isinstance(again, list) and len(again) == 1


def test_deployments_in_one_limit_group_share_one_budget():
    shared = {"rpm": 60, "limit_group": "one-key"}
    admission = admission_for(shared, shared, strategy="simple-shuffle")

    async def scenario():
        first = await admission.acquire("chat", 1, 10)
        second = await admission.acquire("chat", 1, 10)
        return first, second

    first, second = asyncio.run(scenario())
    assert len(first) == 1
    assert isinstance(second, Blocked)  # the other deployment draws on the same key's budget


def test_max_parallel_requests_caps_grants_held_per_deployment():
    rooms = []
    admission = admission_for({"max_parallel_requests": 3}, {"max_parallel_requests": 2})
    admission._on_room = rooms.append

    async def scenario():
        first = await admission.acquire("chat", 10, 10)
        blocked = await admission.acquire("chat", 1, 10)
        admission.done(first[:1])
        again = await admission.acquire("chat", 10, 10)
        return first, blocked, again

    first, blocked, again = asyncio.run(scenario())
    by_deployment = sorted(g.deployment.id for g in first)
    assert by_deployment == ["d0", "d0", "d0", "d1", "d1"]  # 3 + 2, not 10
    assert isinstance(blocked, Blocked) and blocked.reason == "parallel"
    assert rooms == ["chat"]  # the full group is told when a place frees
    assert [g.deployment.id for g in again] == [first[0].deployment.id]


def test_max_parallel_requests_with_rate_limits_gives_back_what_it_cannot_run():
    admission = admission_for({"rpm": 600, "max_parallel_requests": 2}, lookahead_s=5.0)

    async def scenario():
        grants = await admission.acquire("chat", 8, 10)
        admission.done(grants)
        return grants, await admission.acquire("chat", 8, 10)

    grants, after = asyncio.run(scenario())
    assert len(grants) == 2
    # The 6 reservations it could not use went back: the next two are booked right behind.
    assert len(after) == 2 and after[0].send_at - grants[-1].send_at < 0.25


def test_default_max_parallel_requests_applies_to_deployments_without_their_own():
    config = parse_config({
        "model_list": [
            {"model_name": "chat", "litellm_params": {"model": "openai/m", "api_base": "http://x"}},
            {"model_name": "chat", "litellm_params": {"model": "openai/m", "api_base": "http://y",
                                                      "max_parallel_requests": 1}},
        ],
        "router_settings": {"default_max_parallel_requests": 4},
    })
    admission = Admission(
        build_deployments(config), MemoryLimitBackend(), build_strategy("simple-shuffle"),
        RoutingStats(), RateLimitSettings(), config.router_settings,
    )
    assert len(asyncio.run(admission.acquire("chat", 50, 10))) == 5


def _split_of(grants) -> dict[str, int]:
    counts: dict[str, int] = {}
    for grant in grants:
        counts[grant.deployment.id] = counts.get(grant.deployment.id, 0) + 1
    return counts


def test_least_busy_spreads_one_batch_of_grants_and_counts_booked_calls():
    admission = admission_for({"rpm": 60000}, {"rpm": 60000}, strategy="least-busy", lookahead_s=5.0)

    async def scenario():
        first = await admission.acquire("chat", 10, 10)
        second = await admission.acquire("chat", 4, 10)
        return first, second

    first, second = asyncio.run(scenario())
    assert _split_of(first) == {"d0": 5, "d1": 5}  # not 10 on whichever sorted first
    assert _split_of(second) == {"d0": 2, "d1": 2}  # the 10 booked calls count as busy


def test_usage_based_sends_a_batch_to_the_deployment_that_used_fewer_tokens():
    admission = admission_for({"tpm": 10**7}, {"tpm": 10**7}, strategy="usage-based-routing-v2",
                              lookahead_s=5.0)
    admission._stats.tokens_this_minute.update({"d0": 1000, "d1": 0})
    grants = asyncio.run(admission.acquire("chat", 30, 100))
    # d1 catches up d0's 1,000 tokens first (10 calls of 100), then they alternate.
    assert _split_of(grants) == {"d0": 10, "d1": 20}


def test_simple_shuffle_draws_each_call_by_weight():
    admission = admission_for({"weight": 3}, {"weight": 1}, strategy="simple-shuffle")
    counts = {"d0": 0, "d1": 0}

    async def scenario():
        for _ in range(100):
            grants = await admission.acquire("chat", 40, 10)
            admission.done(grants)
            for deployment_id, n in _split_of(grants).items():
                counts[deployment_id] += n

    asyncio.run(scenario())
    assert 0.72 < counts["d0"] / 4000 < 0.78  # 3:1, drawn per call rather than per batch


def test_cost_based_waits_a_little_for_the_cheap_deployment_before_paying_more():
    cheap = {"rpm": 600, "input_cost_per_token": 1e-7, "output_cost_per_token": 1e-7}  # 10 a second
    dear = {"input_cost_per_token": 1e-5, "output_cost_per_token": 1e-5}  # no limit

    def admission(max_wait_s):
        config = parse_config({
            "model_list": [
                {"model_name": "chat", "litellm_params": {"model": "openai/m", "api_base": "http://x", **p},
                 "model_info": {"id": f"d{i}"}}
                for i, p in enumerate((cheap, dear))
            ],
            "router_settings": {"routing_strategy_args": {"max_wait_s": max_wait_s}},
        })
        return Admission(
            build_deployments(config), MemoryLimitBackend(),
            build_strategy("cost-based-routing", config.router_settings.routing_strategy_args),
            RoutingStats(), RateLimitSettings(headroom=0.0, lookahead_s=0.5), config.router_settings,
        )

    async def two_rounds(admission):
        return await admission.acquire("chat", 64, 10) + await admission.acquire("chat", 64, 10)

    waiting = asyncio.run(two_rounds(admission(3.0)))
    # 3 s at 10 a second on the cheap one (plus the one due now), then the dear one takes the rest.
    assert _split_of(waiting) == {"d0": 31, "d1": 64}
    assert max(g.send_at for g in waiting) - time.time() < 3.1
    eager = asyncio.run(two_rounds(admission(0.0)))  # only the usual half-second lookahead
    assert _split_of(eager) == {"d0": 6, "d1": 64}
