"""itpm and otpm: input and output tokens held apart, on both backends, beside rpm and tpm."""

from __future__ import annotations

import time

import pytest

from dispatcher.config.loader import parse_config
from dispatcher.deployments import build_deployments
from dispatcher.limits.backend import Blocked, Reservation
from dispatcher.limits.spec import LimitSpec, limit_specs
from tests.limits.test_backends import run


def spec(key: str, *, rpm=None, tpm=None, itpm=None, otpm=None) -> LimitSpec:
    def interval(per_minute):
        return 60.0 / per_minute if per_minute else 0.0

    return LimitSpec(key, rpm, tpm, interval(rpm), interval(tpm), itpm, otpm, interval(itpm), interval(otpm))


def gaps_of(make_backend, limit: LimitSpec, tokens: int, input_tokens: int) -> list[float]:
    """Gaps between the send times of 6 calls of ``tokens`` (``input_tokens`` of them input)."""

    async def scenario():
        backend = make_backend()
        result = await backend.reserve([limit], 6, tokens, 10.0, input_tokens=input_tokens)
        await backend.aclose()
        return result

    result = run(scenario())
    assert isinstance(result, Reservation) and len(result.send_times) == 6
    times = result.send_times
    return [b - a for a, b in zip(times, times[1:])]


def test_itpm_alone_spaces_calls_by_their_input_tokens(make_backend):
    limit = spec("in", itpm=6000)  # 100 input tokens a second
    # 100 input tokens each: one a second, however many output tokens they ask for.
    assert gaps_of(make_backend, limit, 1100, 100) == pytest.approx([1.0] * 5, abs=1e-5)
    assert gaps_of(make_backend, spec("in-2", itpm=6000), 1010, 10) == pytest.approx([0.1] * 5, abs=1e-5)


def test_otpm_alone_spaces_calls_by_their_output_tokens(make_backend):
    limit = spec("out", otpm=6000)  # 100 output tokens a second
    assert gaps_of(make_backend, limit, 1050, 1000) == pytest.approx([0.5] * 5, abs=1e-5)


@pytest.mark.parametrize(
    ("tokens", "input_tokens", "gap"),
    [
        (20, 10, 0.1),  # small calls: rpm (600) binds
        (300, 170, 0.3),  # tpm (60,000: 1,000 a second) binds
        (400, 300, 0.5),  # itpm (36,000: 600 a second) binds
        (400, 10, 0.78),  # otpm (30,000: 500 a second) binds
    ],
)
def test_with_all_four_limits_the_strictest_binds(make_backend, tokens, input_tokens, gap):
    limit = spec("all", rpm=600, tpm=60000, itpm=36000, otpm=30000)
    assert gaps_of(make_backend, limit, tokens, input_tokens) == pytest.approx([gap] * 5, abs=1e-5)


def next_send_after_correction(make_backend, limit: LimitSpec, correction: tuple) -> float:
    """Book one call of 100 input + 100 output tokens, correct it, and say in how many seconds
    the next such call may go."""

    async def scenario():
        backend = make_backend()
        first = await backend.reserve([limit], 1, 200, 0.0, input_tokens=100)
        assert isinstance(first, Reservation)
        await backend.adjust([(limit, 0, *correction)], 0.0)
        second = await backend.reserve([limit], 1, 200, 0.0, input_tokens=100)
        await backend.aclose()
        return second

    second = run(scenario())
    if isinstance(second, Reservation):
        return second.local_send_time(0) - time.time()
    return second.until - time.time()


@pytest.mark.parametrize(
    ("limit", "correction", "wait"),
    [
        (spec("ci", itpm=6000), (0, 0, 0), 1.0),  # as booked: 100 input tokens take 1 s
        (spec("ci", itpm=6000), (-90, -90, 0), 0.1),  # the prompt had 10 tokens: 0.9 s back
        (spec("ci", itpm=6000), (100, 100, 0), 2.0),  # it had 200: 1 s more
        (spec("co", otpm=6000), (-50, 0, -50), 0.5),  # 50 output tokens instead of 100
        (spec("co", otpm=6000), (200, 0, 200), 3.0),
        (spec("ci", itpm=6000), (0, 0, -100), 1.0),  # an output refund frees no input allowance
    ],
)
def test_corrections_from_usage_give_back_or_take_allowance(make_backend, limit, correction, wait):
    assert next_send_after_correction(make_backend, limit, correction) == pytest.approx(wait, abs=0.05)


def test_given_back_grants_free_input_and_output_schedules(make_backend):
    limit = spec("back", itpm=6000, otpm=6000)

    async def scenario():
        backend = make_backend()
        booked = await backend.reserve([limit], 3, 200, 2.5, input_tokens=100)  # 1 s apart
        await backend.adjust([(limit, -1, -200, -100, -100)] * 3, 0.0)
        again = await backend.reserve([limit], 1, 200, 0.0, input_tokens=100)
        await backend.aclose()
        return booked, again

    booked, again = run(scenario())
    gaps = [b - a for a, b in zip(booked.send_times, booked.send_times[1:])]
    assert gaps == pytest.approx([1.0] * 2, abs=1e-5)
    assert isinstance(again, Reservation)  # all three given back: room at once


def test_a_limit_without_itpm_or_otpm_leaves_its_input_and_output_schedules_alone(redis_server, redis_namespace):
    """One script serves both kinds of limits: a dimension without a limit keeps its time (0)."""
    from dispatcher.limits import keys
    from dispatcher.limits.redis_backend import RedisLimitBackend

    async def scenario():
        backend = RedisLimitBackend(redis_server, redis_namespace)
        plain, split = spec("plain", rpm=600, tpm=60000), spec("split", rpm=600, itpm=6000)
        await backend.reserve([plain], 2, 100, 1.0, input_tokens=50)
        await backend.adjust([(plain, 0, -10)], 0.0)
        await backend.reserve([split], 1, 100, 1.0, input_tokens=50)
        fields = [
            await backend.client.hmget(keys.limit_hash(redis_namespace, limit.key), "i", "o", "t")
            for limit in (plain, split)
        ]
        await backend.aclose()
        return fields

    (plain_i, plain_o, plain_t), (split_i, split_o, split_t) = run(scenario())
    assert float(plain_i) == 0 and float(plain_o) == 0 and float(plain_t) > 0
    assert float(split_i) > 0 and float(split_o) == 0 and float(split_t) == 0


def test_a_full_split_candidate_falls_through_to_the_next(make_backend):
    async def scenario():
        backend = make_backend()
        tight, plain = spec("tight", itpm=600), spec("roomy", rpm=6000)
        first = await backend.reserve([tight, plain], 1, 200, 0.0, input_tokens=100)
        second = await backend.reserve([tight, plain], 1, 200, 0.0, input_tokens=100)
        third = await backend.reserve([tight], 1, 200, 0.0, input_tokens=100)
        await backend.aclose()
        return first, second, third

    first, second, third = run(scenario())
    assert (first.candidate, second.candidate) == (0, 1)
    assert isinstance(third, Blocked) and third.until - time.time() == pytest.approx(10.0, abs=0.05)


def test_a_limit_group_takes_the_strictest_itpm_and_otpm_of_its_deployments():
    config = parse_config({"model_list": [
        {"model_name": "claude", "litellm_params": {
            "model": "openai/m", "api_base": "http://x", "limit_group": "key-1", **params}}
        for params in ({"itpm": 40000, "otpm": 8000}, {"itpm": 20000}, {"rpm": 50})
    ]})
    specs = limit_specs(build_deployments(config), headroom=0.0)
    [only] = set(specs.values())
    assert (only.rpm, only.tpm, only.itpm, only.otpm) == (50, None, 20000, 8000)
    assert only.input_interval == pytest.approx(0.003) and only.output_interval == pytest.approx(0.0075)
    assert only.splits_tokens and only.limited


def test_the_deployment_report_shows_itpm_and_otpm(write_config, sqlite_url):
    from dispatcher import Client
    from dispatcher.console import deployments_table

    config = write_config(
        [("claude", {"model": "openai/m", "api_base": "http://127.0.0.1:9", "itpm": 40000, "otpm": 8000}),
         ("gpt", {"model": "openai/g", "api_base": "http://127.0.0.1:9", "tpm": 1000})],
        settings={"database_url": sqlite_url},
    )
    with Client(config) as client:
        rows = client.deployment_report()
    limits = [(row["tpm"], row["itpm"], row["otpm"]) for row in rows]
    assert limits == [(None, 40000, 8000), (1000, None, None)]
    table = deployments_table(rows)
    assert [column.header for column in table.columns][3:7] == ["rpm", "tpm", "itpm", "otpm"]
    assert list(table.columns[5].cells) == ["40000", "-"]
