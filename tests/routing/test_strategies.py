"""Each routing strategy picks what it should in a deterministic scenario."""

from __future__ import annotations

import collections
import random

from dispatcher.config.loader import parse_config
from dispatcher.deployments import build_deployments
from dispatcher.routing.stats import RoutingStats
from dispatcher.routing.strategies import STRATEGIES, build_strategy


def group(*params: dict):
    config = parse_config({"model_list": [
        {"model_name": "chat", "litellm_params": {"model": "openai/m", "api_base": "http://x", **p},
         "model_info": {"id": f"d{i}"}}
        for i, p in enumerate(params)
    ]})
    return build_deployments(config).group("chat")


def first_choices(name: str, deployments, stats: RoutingStats, n: int = 2000, **args) -> collections.Counter:
    strategy = build_strategy(name, args, random.Random(7))
    return collections.Counter(strategy.order(deployments, stats)[0].id for _ in range(n))


def test_every_strategy_is_registered_under_its_litellm_name():
    assert set(STRATEGIES) == {
        "simple-shuffle", "least-busy", "latency-based-routing", "cost-based-routing",
        "usage-based-routing", "usage-based-routing-v2",
    }


def test_simple_shuffle_follows_weights_then_rpm():
    by_weight = first_choices("simple-shuffle", group({"weight": 3}, {"weight": 1}), RoutingStats())
    assert 0.70 < by_weight["d0"] / 2000 < 0.80
    by_rpm = first_choices("simple-shuffle", group({"rpm": 100}, {"rpm": 300}), RoutingStats())
    assert 0.70 < by_rpm["d1"] / 2000 < 0.80


def test_every_order_lists_every_candidate_once():
    deployments = group({}, {}, {})
    for name in STRATEGIES:
        order = build_strategy(name).order(deployments, RoutingStats())
        assert sorted(d.id for d in order) == ["d0", "d1", "d2"]


def test_least_busy_prefers_fewest_in_flight_across_the_fleet():
    deployments = group({}, {}, {})
    stats = RoutingStats()
    for _ in range(3):
        stats.call_started("d0")
    stats.call_started("d2")
    stats.remote_in_flight["d1"] = 5  # other workers keep d1 busy
    assert first_choices("least-busy", deployments, stats) == {"d2": 2000}


def test_latency_based_prefers_fast_and_shares_within_the_buffer():
    deployments = group({}, {}, {})
    stats = RoutingStats()
    for deployment_id, latency in (("d0", 100.0), ("d1", 105.0), ("d2", 300.0)):
        stats.local[deployment_id].record_latency(latency)
    shared = first_choices("latency-based-routing", deployments, stats, lowest_latency_buffer=0.1)
    assert set(shared) == {"d0", "d1"} and shared["d0"] > 800 and shared["d1"] > 800
    strict = first_choices("latency-based-routing", deployments, stats, lowest_latency_buffer=0.0)
    assert strict == {"d0": 2000}


def test_latency_based_tries_unmeasured_deployments_first():
    deployments = group({}, {})
    stats = RoutingStats()
    stats.local["d0"].record_latency(50.0)
    assert first_choices("latency-based-routing", deployments, stats) == {"d1": 2000}


def test_cost_based_prefers_cheapest_and_ranks_unknown_prices_last():
    deployments = group(
        {"input_cost_per_token": 2e-6, "output_cost_per_token": 8e-6},
        {"input_cost_per_token": 1e-7, "output_cost_per_token": 4e-7},
        {},  # unknown model, no price
    )
    order = build_strategy("cost-based-routing").order(deployments, RoutingStats())
    assert [d.id for d in order] == ["d1", "d0", "d2"]


def test_usage_based_prefers_least_tokens_this_minute():
    deployments = group({}, {}, {})
    stats = RoutingStats(tokens_this_minute={"d0": 5000, "d1": 100, "d2": 900})
    assert first_choices("usage-based-routing-v2", deployments, stats) == {"d1": 2000}
