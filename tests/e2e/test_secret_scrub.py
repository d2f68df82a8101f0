"""A provider that echoes the API key in a successful answer: the key is stored nowhere.

Issue 11, "Secrets": 200 bodies were stored and returned unredacted, so a key quoted in an
answer reached jobs.response, the response cache, dumps and results.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from dispatcher.store.bodies import unpack
from tests.conftest import chat_lines, cli_env, openai_deployment, run_cli, write_jsonl
from tests.helpers.sql import CALLS

pytestmark = pytest.mark.slow

KEY = "sk-echoed-key-0123456789abcdef"


def test_a_key_echoed_in_a_successful_answer_is_scrubbed_everywhere(tmp_path, start_mock_provider, write_config):
    provider = start_mock_provider(api_key=KEY)
    config = write_config(
        [("chat", openai_deployment(provider, api_key="os.environ/LLMD_TEST_ECHO_KEY"))],
        settings={"database_url": f"sqlite:///{tmp_path / 'e.db'}", "cache": {"enabled": True}},
    )
    lines = chat_lines(5, model="chat", temperature=0)  # temperature 0: the answers are cached too
    for line in lines:
        line["messages"][0]["content"] += " [[mock:echo_key]]"
    env = cli_env(LLMD_TEST_ECHO_KEY=KEY)
    out = tmp_path / "out.jsonl"
    result = run_cli("-c", str(config), "-v", "run", str(write_jsonl(tmp_path / "in.jsonl", lines)),
                     "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert provider.stats()["completed"] == 5
    answers = [json.loads(line)["response"]["body"]["choices"][0]["message"]["content"]
               for line in out.read_text().splitlines()]
    assert answers == ["You called me with: Bearer ***"] * 5  # the provider did echo it
    batch_id = json.loads(run_cli("-c", str(config), "list", "--json", env=env).stdout)[0]["id"]
    results = run_cli("-c", str(config), "results", batch_id, env=env)
    status = run_cli("-c", str(config), "status", batch_id, "--json", env=env)
    everything = result.stdout + result.stderr + out.read_bytes() + results.stdout + status.stdout
    assert b"Bearer ***" in results.stdout
    with sqlite3.connect(tmp_path / "e.db") as db:
        # Bodies are stored compressed: a grep of the file alone would not see a key in them.
        stored = [unpack(row[0]) for row in db.execute("SELECT response FROM jobs")]
        requests = [unpack(row[0]) for row in db.execute("SELECT body FROM jobs")]
        calls = db.execute(f"SELECT * FROM {CALLS} AS a").fetchall()
    assert len(stored) == 5 and all("Bearer ***" in response for response in stored)
    assert len(calls) == 5 and KEY not in repr(calls)
    everything += "".join(stored + requests).encode()
    for path in tmp_path.glob("e.db*"):  # jobs.response, attempts, the response cache, the WAL
        everything += path.read_bytes()
    assert KEY.encode() not in everything
