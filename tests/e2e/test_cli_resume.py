"""`run` that is interrupted, or cannot write its files: the printed command finishes the job.

Issue 10, Major 3 and 4: the resume hint must produce the files `run` was asked for, result
paths are checked before anything is submitted (nothing paid for), and a write that still
fails at the end says which command writes the files from the database.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import chat_lines, cli_env, openai_deployment, run_cli, write_jsonl

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent  # the venv's bin, where `llm-dispatch` is installed


def hint_env() -> dict[str, str]:
    """The environment of a user who pastes the hint: `llm-dispatch` on PATH."""
    env = cli_env()
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def printed_command(stderr: bytes, after: str) -> str:
    """The command a message tells the user to paste (the rest of the line after ``after``)."""
    line = next(line for line in stderr.decode().splitlines() if after in line)
    return line.split(after, 1)[1].strip()


def start_run(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_calls(provider, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while provider.stats()["completed"] < count:
        if process.poll() is not None:
            pytest.fail(f"run ended early: {process.stderr.read().decode()}")
        assert time.monotonic() < deadline, "the provider got too few calls"
        time.sleep(0.05)


def custom_ids(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]


def test_interrupted_run_resumes_with_the_printed_command_and_writes_its_files(
    tmp_path, start_mock_provider, write_config
):
    provider = start_mock_provider(latency_ms=200)
    config = write_config(
        [("chat", openai_deployment(provider))],
        settings={"database_url": f"sqlite:///{tmp_path / 'e.db'}", "worker": {"concurrency": 10}},
    )
    lines = chat_lines(60, prefix="resume", model="chat")
    lines[7]["model"] = "no-such-group"  # one request that cannot succeed: the error file has it
    write_jsonl(tmp_path / "in.jsonl", lines)
    process = start_run(["-c", str(config), "run", "in.jsonl", "--skip-invalid",
                         "-o", "out.jsonl", "--errors", "failed.jsonl"], cwd=tmp_path)
    wait_for_calls(provider, 10, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr.decode()
    assert not (tmp_path / "out.jsonl").exists()

    hint = printed_command(stderr, "Resume with:")
    assert " -o out.jsonl --errors failed.jsonl" in hint and f"--config {config}" in hint
    resumed = subprocess.run(hint, shell=True, cwd=tmp_path, env=hint_env(), capture_output=True, timeout=60)
    assert resumed.returncode == 1, resumed.stderr.decode()  # one request failed, as with run
    assert b"they are in failed.jsonl" in resumed.stderr
    expected = [line["custom_id"] for line in lines]
    assert custom_ids(tmp_path / "out.jsonl") == expected[:7] + expected[8:]
    assert custom_ids(tmp_path / "failed.jsonl") == [expected[7]]
    assert provider.stats()["duplicates"] == 0


def test_run_without_output_resumes_to_stdout(tmp_path, start_mock_provider, write_config):
    provider = start_mock_provider(latency_ms=200)
    config = write_config(
        [("chat", openai_deployment(provider))],
        settings={"database_url": f"sqlite:///{tmp_path / 'e.db'}", "worker": {"concurrency": 10}},
    )
    lines = chat_lines(40, prefix="stdout", model="chat")
    write_jsonl(tmp_path / "in.jsonl", lines)
    process = start_run(["-c", str(config), "run", "in.jsonl"], cwd=tmp_path)
    wait_for_calls(provider, 10, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr.decode()

    hint = printed_command(stderr, "Resume with:")
    assert hint.endswith(" -o -")
    resumed = subprocess.run(hint, shell=True, cwd=tmp_path, env=hint_env(), capture_output=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr.decode()
    results = [json.loads(line)["custom_id"] for line in resumed.stdout.decode().splitlines()]
    assert results == [line["custom_id"] for line in lines]


@pytest.mark.parametrize("option", ["-o", "--errors"])
def test_unwritable_result_path_is_refused_before_anything_is_submitted(
    tmp_path, mock_provider, write_config, option
):
    config = write_config(
        [("chat", openai_deployment(mock_provider))],
        settings={"database_url": f"sqlite:///{tmp_path / 'e.db'}"},
    )
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(5, model="chat"))
    missing = tmp_path / "missing" / "dir" / "file.jsonl"
    result = run_cli("-c", str(config), "run", str(source), option, str(missing))
    assert result.returncode == 2, result.stderr.decode()
    assert f"folder {missing.parent} does not exist".encode() in result.stderr
    assert mock_provider.stats()["completed"] == 0
    listed = run_cli("-c", str(config), "list", "--json")
    assert listed.returncode == 0, listed.stderr.decode()
    assert json.loads(listed.stdout) == []  # nothing submitted


def test_same_file_for_output_and_errors_is_refused(tmp_path, mock_provider, write_config):
    config = write_config([("chat", openai_deployment(mock_provider))],
                          settings={"database_url": f"sqlite:///{tmp_path / 'e.db'}"})
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(3, model="chat"))
    result = run_cli("-c", str(config), "run", str(source), "-o", "r.jsonl", "--errors", "./r.jsonl",
                     cwd=tmp_path)
    assert result.returncode == 2
    assert b"name the same file" in result.stderr
    assert mock_provider.stats()["completed"] == 0


def test_output_folder_removed_during_run_names_the_command_that_writes_the_files(
    tmp_path, start_mock_provider, write_config
):
    provider = start_mock_provider(latency_ms=100)
    config = write_config(
        [("chat", openai_deployment(provider))],
        settings={"database_url": f"sqlite:///{tmp_path / 'e.db'}", "worker": {"concurrency": 10}},
    )
    lines = chat_lines(40, prefix="gone", model="chat")
    write_jsonl(tmp_path / "in.jsonl", lines)
    (tmp_path / "outdir").mkdir()
    process = start_run(["-c", str(config), "run", "in.jsonl", "-o", "outdir/out.jsonl"], cwd=tmp_path)
    wait_for_calls(provider, 5, process)
    shutil.rmtree(tmp_path / "outdir")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stderr.decode()
    assert b"Traceback" not in stderr
    assert b"Nothing is lost" in stderr

    (tmp_path / "outdir").mkdir()
    again = printed_command(stderr, "write them with:")
    assert again.endswith(" -o outdir/out.jsonl")
    written = subprocess.run(again, shell=True, cwd=tmp_path, env=hint_env(), capture_output=True, timeout=60)
    assert written.returncode == 0, written.stderr.decode()
    assert custom_ids(tmp_path / "outdir" / "out.jsonl") == [line["custom_id"] for line in lines]
    assert provider.stats()["completed"] == 40  # nothing was run twice to get the files
