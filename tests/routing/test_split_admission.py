"""Admission on a deployment with itpm/otpm: bookings split into input and output tokens,
fitted to each job, given back, and corrected from the usage the provider reports."""

from __future__ import annotations

import asyncio
import time

import pytest

from dispatcher.limits.backend import Blocked
from dispatcher.limits.spec import TokenBooking
from dispatcher.providers.base import Completion, Usage
from tests.routing.test_admission import admission_for


def answered(prompt_tokens: int, completion_tokens: int) -> Completion:
    return Completion(200, b"{}", Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                        total_tokens=prompt_tokens + completion_tokens))


def seconds_until(result) -> float:
    assert isinstance(result, Blocked), result
    return result.until - time.time()


def test_itpm_holds_calls_by_their_input_and_usage_gives_back_what_the_prompt_did_not_use():
    admission = admission_for({"itpm": 6000})  # 100 input tokens a second

    async def scenario():
        [grant] = await admission.acquire("chat", 1, 1100, 100)
        held = await admission.acquire("chat", 1, 1100, 100)
        await admission.settle(grant, completion=answered(20, 900), error=None,
                               est_prompt_tokens=100, est_completion_tokens=1000)
        return grant, held, await admission.acquire("chat", 1, 1100, 100)

    grant, held, after = asyncio.run(scenario())
    assert (grant.input_tokens, grant.output_tokens) == (100, 1000)
    assert seconds_until(held) == pytest.approx(1.0, abs=0.05)  # output tokens cost nothing here
    assert seconds_until(after) == pytest.approx(0.2, abs=0.05)  # the prompt had 20 tokens, not 100


def test_otpm_is_corrected_by_the_output_really_produced():
    admission = admission_for({"otpm": 60000})  # 1,000 output tokens a second

    async def scenario():
        [grant] = await admission.acquire("chat", 1, 1100, 100)
        await admission.settle(grant, completion=answered(100, 100), error=None,
                               est_prompt_tokens=100, est_completion_tokens=1000)
        return await admission.acquire("chat", 1, 1100, 100)

    # max_tokens (1,000) was booked; the call produced 100: 0.9 s of allowance comes back.
    assert seconds_until(asyncio.run(scenario())) == pytest.approx(0.1, abs=0.05)


def test_a_job_needing_more_input_than_reserved_waits_for_it_and_unused_grants_give_all_back():
    admission = admission_for({"itpm": 6000, "otpm": 60000, "tpm": 600000})

    async def scenario():
        grants = await admission.acquire("chat", 1, 200, 100)
        [delay] = await admission.resize(grants, [TokenBooking(input=300, output=100)])  # 200 more input
        await admission.release(grants)
        return delay, await admission.acquire("chat", 1, 200, 100)

    delay, again = asyncio.run(scenario())
    assert delay == pytest.approx(2.0)  # 200 input tokens at 100 a second; output is the same
    assert len(again) == 1 and again[0].send_at <= time.time() + 0.01  # everything was given back
