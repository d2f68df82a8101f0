"""Submit options are defined once (SubmitOptions): the client and the CLI take the same set."""

from __future__ import annotations

import time
from calendar import timegm
from dataclasses import replace

import click
import pytest

import cli
from dispatcher.submit_options import SubmitOptions, public_fields
from dispatcher.errors import UsageError


def option_names(command: click.Command) -> set[str]:
    return {param.name for param in command.params if isinstance(param, click.Option)}


def test_every_submit_option_is_a_cli_option_of_submit_and_run_spelled_like_the_field():
    names = {spec.name for spec in public_fields()}
    assert names <= option_names(cli.submit)
    assert names - {"idempotency_key"} <= option_names(cli.run)
    assert "idempotency_key" not in option_names(cli.run)
    assert "cache_mode" not in option_names(cli.submit)  # derived by the client from --cache
    for spec in public_fields():
        flag = "--" + spec.name.replace("_", "-")
        assert any(flag in param.opts for param in cli.submit.params), flag


def test_options_are_normalized_once_when_built():
    options = SubmitOptions(priority="high", not_before="2026-11-25T02:00")
    assert options.priority == 2
    assert options.not_before == timegm((2026, 11, 25, 2, 0, 0))  # no zone: UTC
    delayed = SubmitOptions(delay="10m")
    assert 599 < delayed.not_before - time.time() <= 600 and delayed.delay is None
    again = replace(delayed, name="x")  # replace() normalizes again: nothing moves
    assert again.not_before == delayed.not_before and again.priority is None


@pytest.mark.parametrize("fields, message", [
    ({"priority": "soon"}, "--priority: 'soon' is not a priority"),
    ({"not_before": "2026-11-25T02:00", "delay": "1h"}, "use --not-before or --delay, not both"),
    ({"delay": "a while"}, "--delay: 'a while' is not a duration"),
    ({"not_before": "next week"}, "--not-before: 'next week' is not a time"),
    ({"weight": 0}, "weight must be positive"),
    ({"weight": 5e-324}, "weight must be between 0.001 and 1000"),
    ({"weight": 1e6}, "weight must be between 0.001 and 1000"),
    ({"max_cost": -1.0}, "max_cost must be positive"),
])
def test_bad_options_are_usage_errors_naming_the_option(fields, message):
    with pytest.raises(UsageError) as info:
        SubmitOptions(**fields)
    assert message in str(info.value)
