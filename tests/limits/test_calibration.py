"""Token bookings learn how the provider counts, so a tpm-bound schedule is not wasted."""

from __future__ import annotations

import asyncio

from dispatcher.limits.calibration import TokenCalibration
from dispatcher.limits.spec import TokenBooking
from dispatcher.providers.base import Completion, Usage
from tests.routing.test_admission import admission_for


def test_bookings_start_at_the_estimate_and_follow_what_the_provider_bills():
    calibration = TokenCalibration()
    assert calibration.booking("d", 100, 50, completion_follows_usage=False) == TokenBooking(100, 50)
    for _ in range(5):
        calibration.observe("d", 100, 50, Usage(prompt_tokens=60, completion_tokens=10, total_tokens=70))
    # max_tokens counting: only the prompt part is scaled; the requested completion is billed.
    assert calibration.booking("d", 100, 50, completion_follows_usage=False) == TokenBooking(60, 50)
    # usage counting: the completion part follows what calls really used too.
    assert calibration.booking("d", 100, 50, completion_follows_usage=True) == TokenBooking(60, 10)
    assert calibration.booking("other", 100, 50, completion_follows_usage=False).total == 150


def test_ratios_stay_within_bounds_and_recent_calls_weigh_more():
    calibration = TokenCalibration()
    calibration.observe("d", 100, 50, Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0))
    assert calibration.prompt_ratio("d") == 1.0  # all-zero usage (not reported) is ignored
    calibration.observe("d", 10, 50, Usage(prompt_tokens=1000, completion_tokens=0, total_tokens=1000))
    assert calibration.prompt_ratio("d") == 5.0 and calibration.completion_ratio("d") == 0.02
    for _ in range(300):
        calibration.observe("d", 100, 50, Usage(prompt_tokens=80, completion_tokens=25, total_tokens=105))
    assert abs(calibration.prompt_ratio("d") - 0.8) < 0.01
    assert abs(calibration.completion_ratio("d") - 0.5) < 0.01


def test_admission_books_calibrated_tokens_and_corrects_only_the_remaining_error():
    admission = admission_for({"tpm": 60000}, lookahead_s=5.0)
    deployment = admission._deployments.group("chat")[0]
    completion = Completion(200, b"{}", Usage(prompt_tokens=70, completion_tokens=20, total_tokens=90))

    async def one_call():
        [grant] = await admission.acquire("chat", 1, 150)
        need = admission.booking(deployment, 100, 50)
        await admission.resize([grant], [need])
        await admission.settle(grant, completion=completion, error=None,
                               est_prompt_tokens=100, est_completion_tokens=50)
        return need

    needs = [asyncio.run(one_call()) for _ in range(3)]
    assert needs[0].total == 150  # nothing learned yet
    assert needs[1] == needs[2] == TokenBooking(70, 50)  # the provider's prompt count + the requested maximum
