"""The live progress display shows notes (paths, commands to paste) as written."""

from __future__ import annotations

import dataclasses
import io
import time

from rich.console import Console

from dispatcher.client.batch_info import BatchInfo
from dispatcher.console import BatchProgress, batch_table, status_text

FIELDS = {field.name: None for field in dataclasses.fields(BatchInfo)}


def batch(**values) -> BatchInfo:
    base = dict(FIELDS, id="batch_1", status="in_progress", priority=5, created_at=time.time(),
                completion_window="24h", total=4, succeeded=1, failed=0, cancelled=0, expired=0,
                prompt_tokens=0, completion_tokens=0, total_tokens=0, cached_tokens=0, cost=0.0,
                cost_unknown=0)
    base.update(values)
    return BatchInfo(**base)


def test_terminal_progress_shows_a_note_with_brackets_as_written():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=200, color_system=None)
    with BatchProgress(console) as progress:
        progress.update(batch(), "no live workers: start some with `llm-dispatch --config [/red]c.yaml worker`")
    assert "--config [/red]c.yaml worker" in screen.getvalue()


def test_held_batch_status_says_until_when():
    now = time.time()
    held = batch(not_before=now + 600)
    assert status_text(held, now).startswith("in_progress (held until ")
    assert status_text(held, now).endswith(", starts in 10m00s)")
    assert status_text(batch(not_before=now - 1), now) == "in_progress"
    assert status_text(batch(status="cancelled", not_before=now + 600), now) == "cancelled"


def test_status_table_escapes_control_characters_in_every_user_field():
    screen = io.StringIO()
    info = batch(name="n\x1b[2J", metadata={"k\x1b": "v\x07"}, error_message="boom\x1b]0;t\x07",
                 input_file="in\rput.jsonl")
    Console(file=screen, force_terminal=True, width=200).print(batch_table(info))
    text = screen.getvalue()
    for shown in ("n\\x1b[2J", "k\\x1b=v\\x07", "boom\\x1b]0;t\\x07", "in\\x0dput.jsonl"):
        assert shown in text
    assert "\x07" not in text and "\r" not in text and "[2J" not in text.replace("\\x1b[2J", "")
