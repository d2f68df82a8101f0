"""itpm and otpm held by the in-process engine (SQLite, in-process limits), measured at the
HTTP mock provider: its sliding window of input (output) tokens is never exceeded, and calls
are spaced by their input (output) tokens only."""

from __future__ import annotations

from dispatcher import Client
from tests.conftest import openai_deployment
from tests.engine.test_engine import run_engine_until_done

# The schedule's guarantee for any window: its share of the minute at 97%, plus one call. So
# each call (about 35 tokens) is under 3% of the window's allowance.
WINDOW_S = 3
PER_WINDOW = 1500  # the provider's itpm or otpm
PER_MINUTE = PER_WINDOW * 60 // WINDOW_S  # the same, as the dispatcher is told
RATE = PER_MINUTE * (1 - 0.03) / 60  # tokens a second: the dispatcher runs at 97% of each limit
JOBS = 60


def lines(count: int, max_tokens: int) -> list[dict]:
    """Lines of about 33 input tokens each (the mock answers about 30 output tokens)."""
    return [
        {
            "custom_id": f"job-{i}",
            "model": "chat",
            "messages": [{"role": "user", "content": f"job {i}: " + "lorem ipsum " * 8}],
            "max_tokens": max_tokens,
        }
        for i in range(count)
    ]


def run_batch(write_config, sqlite_url, provider, limit: dict, max_tokens: int) -> dict:
    config = write_config([("chat", openai_deployment(provider, **limit))],
                          settings={"database_url": sqlite_url})
    with Client(config) as client:
        batch = client.submit(lines(JOBS, max_tokens))
        run_engine_until_done(client, batch.batch_id, timeout=60)
    stats = provider.stats(detail=True)
    assert stats["completed"] == JOBS and stats["duplicates"] == 0
    assert stats["rate_limited"] == 0, stats["by_status"]  # the provider never had to refuse one
    return stats


def span_of(stats: dict) -> float:
    times = [at for at, _ in stats["admitted_at"]]
    return max(times) - min(times)


def test_a_deployment_is_held_to_its_itpm_at_the_provider(write_config, sqlite_url, start_mock_provider):
    provider = start_mock_provider(itpm=PER_WINDOW, window_s=WINDOW_S)
    stats = run_batch(write_config, sqlite_url, provider, {"itpm": PER_MINUTE}, max_tokens=1000)
    assert stats["peak_input_tokens_in_window"] <= PER_WINDOW
    inputs = [input_tokens for input_tokens, _ in stats["admitted_input_output"]]
    assert min(inputs) > 25
    # Each call's input tokens take their share of the minute before the next may go. Calls
    # booked against prompt + max_tokens would take thirty times as long; calls not held would
    # all go at once.
    expected_span = sum(inputs[:-1]) / RATE
    assert 0.9 * expected_span <= span_of(stats) <= 1.2 * expected_span + 0.5, (span_of(stats), expected_span)


def test_a_deployment_is_held_to_its_otpm_at_the_provider(write_config, sqlite_url, start_mock_provider):
    provider = start_mock_provider(otpm=PER_WINDOW, window_s=WINDOW_S)
    stats = run_batch(write_config, sqlite_url, provider, {"otpm": PER_MINUTE}, max_tokens=40)
    assert stats["peak_output_tokens_in_window"] <= PER_WINDOW
    outputs = [output_tokens for _, output_tokens in stats["admitted_input_output"]]
    # Booked at max_tokens (40), corrected to what was produced after each call: the span lies
    # between the output really produced and the output booked, at the otpm rate.
    produced, booked = sum(outputs[:-1]) / RATE, 40 * (JOBS - 1) / RATE
    assert 0.9 * produced <= span_of(stats) <= 1.2 * booked + 0.5, (span_of(stats), produced, booked)
