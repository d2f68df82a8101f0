"""A line its group's adapter cannot send is refused at submit, naming the line and the field,
not by the provider an hour into the batch (here: Anthropic's Messages API has no place for a
temperature above 1 or for `n` above 1). Nothing is sent: the deployment's api_base answers
nothing."""

from __future__ import annotations

import pytest

from dispatcher import Client
from dispatcher.errors import InputError
from tests.conftest import chat_lines


def claude_config(write_config, sqlite_url):
    claude = {"model": "anthropic/claude-haiku-4-5", "api_base": "http://127.0.0.1:9", "api_key": "sk-ant-test"}
    return write_config([("claude", claude), ("gpt", {"model": "mock/echo"})],
                        settings={"database_url": sqlite_url})


def test_a_line_anthropic_cannot_take_is_refused_at_submit(write_config, sqlite_url):
    lines = chat_lines(3, model="claude")
    lines[1]["temperature"] = 1.5
    with Client(claude_config(write_config, sqlite_url)) as client:
        with pytest.raises(InputError) as refused:
            client.submit(lines)
        assert client.list_batches() == []  # nothing stored
        # The same body is fine for an OpenAI-compatible group.
        gpt = chat_lines(1, model="gpt", temperature=1.5)
        assert client.submit(gpt).total == 1
    [problem] = refused.value.problems
    assert problem.line == 2 and "temperature" in problem.message and "anthropic/claude-haiku-4-5" in problem.message


def test_a_completion_anthropic_cannot_take_is_refused_before_it_is_stored(write_config, sqlite_url):
    with Client(claude_config(write_config, sqlite_url)) as client:
        with pytest.raises(InputError, match="temperature"):
            client.prepare_completion({"model": "claude", "messages": [{"role": "user", "content": "hi"}],
                                       "temperature": 3}, priority=5)
