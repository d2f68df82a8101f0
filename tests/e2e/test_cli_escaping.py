"""Text from users is shown as written: never read as rich markup, never sent raw to a terminal.

Issue 11: `--name '[/]'` made `list` crash for everyone, `[bold red]` was rendered, and escape
sequences in names reached the terminal through `status`.
"""

from __future__ import annotations

import pytest

from tests.conftest import chat_lines, run_cli, write_jsonl

pytestmark = pytest.mark.slow

ESCAPES = "\x1b[2J\x1b]0;owned\x07"  # clear the screen, set the terminal's title


@pytest.fixture
def local_config(tmp_path, write_config):
    return write_config([("chat", {"model": "mock/echo"})],
                        settings={"database_url": f"sqlite:///{tmp_path / 'x.db'}"})


def submit(config, tmp_path, *options: str) -> str:
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(2, model="chat"))
    result = run_cli("-c", str(config), "submit", str(source), *options)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def test_markup_in_names_and_metadata_is_shown_as_written(tmp_path, local_config):
    closing = submit(local_config, tmp_path, "--name", "[/]")
    styled = submit(local_config, tmp_path, "--name", "[bold red]loud", "--metadata", "team=[blink]x[/blink]")
    listed = run_cli("-c", str(local_config), "list")
    assert listed.returncode == 0, listed.stderr.decode()
    assert "[/]" in listed.stdout.decode() and "[bold red]loud" in listed.stdout.decode()
    for batch_id in (closing, styled):
        shown = run_cli("-c", str(local_config), "status", batch_id)
        assert shown.returncode == 0, shown.stderr.decode()
    shown = run_cli("-c", str(local_config), "status", styled).stdout.decode()
    assert "([bold red]loud)" in shown
    assert "team=[blink]x[/blink]" in shown


def test_control_characters_never_reach_the_terminal(tmp_path, local_config):
    batch_id = submit(local_config, tmp_path, "--name", f"evil{ESCAPES}", "--metadata", f"k=v{ESCAPES}")
    outputs = [
        run_cli("-c", str(local_config), "list"),
        run_cli("-c", str(local_config), "status", batch_id),
        run_cli("-c", str(local_config), "status", f"batch_{ESCAPES}"),  # echoed in the error
    ]
    for result in outputs:
        assert b"\x1b" not in result.stdout + result.stderr and b"\x07" not in result.stdout + result.stderr
    assert "evil\\x1b[2J\\x1b]0;owned\\x07" in outputs[1].stdout.decode()  # visible, not obeyed
    assert "k=v\\x1b[2J" in outputs[1].stdout.decode()
    assert outputs[2].returncode == 2 and b"no batch with id batch_\\x1b[2J" in outputs[2].stderr


def test_group_names_with_markup_in_models_and_usage(tmp_path, write_config):
    config = write_config([("[/]odd", {"model": "mock/echo"})],
                          settings={"database_url": f"sqlite:///{tmp_path / 'g.db'}"})
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(2, model="[/]odd"))
    assert run_cli("-c", str(config), "run", str(source), "-o", str(tmp_path / "o.jsonl")).returncode == 0
    for command in (["models"], ["usage"]):
        result = run_cli("-c", str(config), *command)
        assert result.returncode == 0, result.stderr.decode()
        assert "[/]odd" in result.stdout.decode()
