"""Every option that takes a time reads the same text as the same instant (issue 12, step 4).

A naive ISO time means UTC for --not-before and for usage --since/--until alike, whatever
the machine's time zone: the commands run here at UTC+9.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import chat_lines, cli_env, run_cli, write_jsonl

pytestmark = pytest.mark.slow

FAR_EAST = cli_env(TZ="JST-9")  # UTC+9 as a POSIX TZ string: no zoneinfo files needed


@pytest.fixture
def local_config(tmp_path, write_config):
    """Embedded mode: SQLite, the in-process mock provider, no Redis."""
    return write_config([("chat", {"model": "mock/echo"})],
                        settings={"database_url": f"sqlite:///{tmp_path / 't.db'}"})


def llmd(config, *args: str) -> str:
    result = run_cli("-c", str(config), *args, env=FAR_EAST)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def naive_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(tzinfo=None, microsecond=0).isoformat()


def test_a_naive_time_is_the_same_utc_instant_for_not_before_and_usage(tmp_path, local_config):
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(2, model="chat"))
    llmd(local_config, "run", str(source), "-o", str(tmp_path / "out.jsonl"))  # 2 calls, now
    now = datetime.now(timezone.utc)
    in_an_hour, an_hour_ago = naive_utc(now + timedelta(hours=1)), naive_utc(now - timedelta(hours=1))
    instant = datetime.fromisoformat(in_an_hour).replace(tzinfo=timezone.utc).timestamp()

    held = llmd(local_config, "submit", str(source), "--not-before", in_an_hour).strip()
    held_until = json.loads(llmd(local_config, "status", held, "--json"))["held_until"]
    assert held_until == pytest.approx(instant, abs=1.0)  # read as local time it was 9 h off

    def calls(*window: str) -> int:
        return sum(row["requests"] for row in json.loads(llmd(local_config, "usage", "--json", *window)))

    assert calls("--since", in_an_hour) == 0  # the same text: after the calls
    assert calls("--until", in_an_hour) == 2
    assert calls("--since", an_hour_ago) == 2
    not_held = llmd(local_config, "submit", str(source), "--not-before", an_hour_ago).strip()
    assert json.loads(llmd(local_config, "status", not_held, "--json"))["held_until"] is None


def test_a_time_that_cannot_be_read_exits_2_naming_the_option_and_the_forms(tmp_path, local_config):
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(1, model="chat"))
    submitted = run_cli("-c", str(local_config), "submit", str(source), "--not-before", "tomorrow",
                        env=FAR_EAST)
    assert submitted.returncode == 2
    assert submitted.stderr.decode().startswith("error: --not-before: 'tomorrow' is not a time")
    assert b"no zone means UTC" in submitted.stderr
    report = run_cli("-c", str(local_config), "usage", "--since", "tomorrow", env=FAR_EAST)
    assert report.returncode == 2
    assert report.stderr.decode().startswith("error: --since: 'tomorrow' is not a time")


def test_every_option_that_takes_a_time_says_a_naive_time_means_utc():
    for command, options in (("submit", ["--not-before"]), ("run", ["--not-before"]),
                             ("usage", ["--since"])):
        text = " ".join(run_cli(command, "--help").stdout.decode().split())
        for option in options:
            assert option in text
        assert "no zone means UTC" in text, command
