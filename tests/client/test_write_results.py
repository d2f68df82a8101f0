"""`Client.write_results` takes paths (str or Path) and open files, binary or text."""

from __future__ import annotations

import io
import json

import pytest

from dispatcher import Client
from tests.conftest import chat_lines

pytestmark = pytest.mark.slow


@pytest.fixture
def finished_batch(tmp_path, write_config):
    """A client and an ended batch of 3 requests: 2 succeeded, 1 invalid (failed)."""
    config = write_config([("chat", {"model": "mock/echo"})],
                          settings={"database_url": f"sqlite:///{tmp_path / 'c.db'}"})
    lines = chat_lines(3, model="chat")
    lines[1]["model"] = "no-such-group"
    with Client(config) as client:
        info = client.run(lines, skip_invalid=True)
        assert (info.succeeded, info.failed) == (2, 1)
        yield client, info.id


def ids(text: str) -> list[str]:
    return [json.loads(line)["custom_id"] for line in text.splitlines()]


def test_str_and_path_targets(tmp_path, finished_batch):
    client, batch_id = finished_batch
    counts = client.write_results(batch_id, str(tmp_path / "o.jsonl"), tmp_path / "e.jsonl")
    assert (counts.succeeded, counts.failed) == (2, 1)
    assert ids((tmp_path / "o.jsonl").read_text()) == ["job-0", "job-2"]
    assert ids((tmp_path / "e.jsonl").read_text()) == ["job-1"]


def test_binary_and_text_file_objects(finished_batch):
    client, batch_id = finished_batch
    binary, text = io.BytesIO(), io.StringIO()
    client.write_results(batch_id, binary, text)
    assert ids(binary.getvalue().decode()) == ["job-0", "job-2"]
    assert ids(text.getvalue()) == ["job-1"]


def test_text_file_opened_by_the_caller(tmp_path, finished_batch):
    client, batch_id = finished_batch
    with open(tmp_path / "o.jsonl", "w") as handle:
        client.write_results(batch_id, handle)
    assert ids((tmp_path / "o.jsonl").read_text()) == ["job-0", "job-2"]
