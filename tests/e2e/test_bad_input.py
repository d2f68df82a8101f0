"""Bad input and faults: each gets a clear message and a definite outcome, nothing half-done."""

from __future__ import annotations

import json

import pytest

from tests.conftest import chat_lines, openai_deployment, run_cli, write_jsonl

pytestmark = pytest.mark.slow


def batches_in(config) -> list:
    listed = run_cli("-c", str(config), "list", "--json")
    assert listed.returncode == 0, listed.stderr.decode()
    return json.loads(listed.stdout)


@pytest.fixture
def local_config(tmp_path, mock_provider, write_config):
    return write_config(
        [("chat", openai_deployment(mock_provider))],
        settings={"database_url": f"sqlite:///{tmp_path / 'b.db'}"},
    )


def test_malformed_jsonl_refuses_the_whole_submission(tmp_path, local_config):
    good = chat_lines(3, model="chat")
    source = write_jsonl(tmp_path / "in.jsonl", [good[0], "{not json", good[1], '{"custom_id": "x"}', good[2]])
    result = run_cli("-c", str(local_config), "submit", str(source))
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "line 2: not valid JSON" in stderr
    assert "line 4: body.messages must be a non-empty list" in stderr
    assert "--skip-invalid" in stderr
    assert result.stdout == b""
    assert batches_in(local_config) == []


def test_skip_invalid_stores_valid_lines_and_failed_jobs(tmp_path, local_config):
    good = chat_lines(2, model="chat")
    source = write_jsonl(tmp_path / "in.jsonl", [good[0], "{not json", good[1]])
    result = run_cli("-c", str(local_config), "run", str(source), "--skip-invalid",
                     "-o", str(tmp_path / "out.jsonl"), "--errors", str(tmp_path / "err.jsonl"))
    assert result.returncode == 1  # finished, with a failure
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    errors = [json.loads(line) for line in (tmp_path / "err.jsonl").read_text().splitlines()]
    assert [r["custom_id"] for r in out] == ["job-0", "job-1"]
    assert len(errors) == 1 and errors[0]["response"] is None
    assert errors[0]["error"]["code"] == "invalid_json"
    assert "line 2" in errors[0]["error"]["message"]
    batch_id = batches_in(local_config)[0]["id"]
    status = json.loads(run_cli("-c", str(local_config), "status", batch_id, "--json").stdout)
    # OpenAI's Batch object lists the refused lines in "errors".
    assert status["errors"]["object"] == "list"
    assert [(e["line"], e["code"]) for e in status["errors"]["data"]] == [(2, "invalid_json")]


def test_generated_ids_never_take_an_id_the_file_gives(tmp_path, local_config):
    """A line without custom_id would be line-N; a line naming itself line-N keeps that id."""
    message = [{"role": "user", "content": "hi"}]
    lines = [
        {"model": "chat", "messages": message},                      # line 1, no id
        {"custom_id": "line-1", "model": "chat", "messages": message},
        "{not json",                                                  # line 3, invalid
        {"custom_id": "line-3", "model": "chat", "messages": message},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    result = run_cli("-c", str(local_config), "run", str(source), "--skip-invalid",
                     "-o", str(tmp_path / "out.jsonl"), "--errors", str(tmp_path / "err.jsonl"))
    assert result.returncode == 1, result.stderr.decode()  # only the invalid line failed
    out = [json.loads(line)["custom_id"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    errors = [json.loads(line) for line in (tmp_path / "err.jsonl").read_text().splitlines()]
    assert out == ["line-1-2", "line-1", "line-3"]
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [("line-3-2", "invalid_json")]


def test_unknown_model_group(tmp_path, local_config):
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(2, model="nope"))
    result = run_cli("-c", str(local_config), "submit", str(source))
    assert result.returncode == 2
    assert "unknown model group 'nope'" in result.stderr.decode()
    assert "chat" in result.stderr.decode()
    result = run_cli("-c", str(local_config), "submit", str(source), "--model", "nope2")
    assert result.returncode == 2 and "nope2" in result.stderr.decode()


def test_missing_config_file(tmp_path):
    result = run_cli("--config", str(tmp_path / "absent.yaml"), "list")
    assert result.returncode == 2
    assert "config file not found" in result.stderr.decode()
    assert "absent.yaml" in result.stderr.decode()


def test_invalid_config_names_the_key_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model_list:\n  - model_name: chat\n    litellm_params: {model: openai/x, api_base: http://x, rpm: -5}\n")
    result = run_cli("--config", str(path), "models")
    assert result.returncode == 2
    assert "model_list[0].litellm_params.rpm" in result.stderr.decode()


def test_redis_unreachable_names_the_url_and_stores_nothing(tmp_path, mock_provider, write_config):
    config = write_config(
        [("chat", openai_deployment(mock_provider))],
        settings={"database_url": f"sqlite:///{tmp_path / 'r.db'}", "redis_url": "redis://127.0.0.1:1/0"},
    )
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(3, model="chat"))
    result = run_cli("-c", str(config), "submit", str(source))
    assert result.returncode == 3
    assert "redis://127.0.0.1:1/0" in result.stderr.decode()
    assert batches_in(config) == []


def test_database_unreachable_names_the_url(tmp_path, mock_provider, write_config):
    config = write_config(
        [("chat", openai_deployment(mock_provider))],
        settings={"database_url": "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/nope"},
    )
    result = run_cli("-c", str(config), "list")
    assert result.returncode == 3
    stderr = result.stderr.decode()
    assert "127.0.0.1:1/nope" in stderr and "hunter2" not in stderr


def test_provider_401_fails_without_retries_and_never_prints_the_key(
    tmp_path, start_mock_provider, write_config
):
    provider = start_mock_provider(api_key="sk-the-right-key-123456")
    wrong_key = "sk-wrong-key-abcdef987654"
    config = write_config(
        [("chat", openai_deployment(provider, api_key="os.environ/TEST_PROVIDER_KEY"))],
        router={"num_retries": 3},
        settings={"database_url": f"sqlite:///{tmp_path / 'k.db'}"},
    )
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(2, model="chat"))
    from tests.conftest import cli_env

    env = cli_env(TEST_PROVIDER_KEY=wrong_key)
    result = run_cli("-v", "-c", str(config), "run", str(source), "-o", str(tmp_path / "out.jsonl"),
                     "--errors", str(tmp_path / "err.jsonl"), env=env)
    assert result.returncode == 1
    assert provider.stats()["requests"] == 2  # no retries for an authentication error
    errors = [json.loads(line) for line in (tmp_path / "err.jsonl").read_text().splitlines()]
    assert [e["response"]["status_code"] for e in errors] == [401, 401]
    assert "Incorrect API key provided" in errors[0]["response"]["body"]["error"]["message"]
    batch_id = batches_in(config)[0]["id"]
    status = run_cli("-c", str(config), "status", batch_id, "--json", env=env)
    assert json.loads(status.stdout)["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    everything = result.stdout + result.stderr + status.stdout + status.stderr
    everything += (tmp_path / "out.jsonl").read_bytes() + (tmp_path / "err.jsonl").read_bytes()
    for path in tmp_path.glob("k.db*"):  # the database file and its WAL
        everything += path.read_bytes()
    assert wrong_key.encode() not in everything
    assert b"sk-the-right-key" not in everything


def test_a_deployment_with_a_bad_key_is_cooled_and_its_group_siblings_take_the_jobs(
    tmp_path, start_mock_provider, write_config
):
    bad = start_mock_provider(api_key="sk-not-what-the-config-says-1")
    good = start_mock_provider(latency_ms=20)
    config = write_config(
        [("chat", openai_deployment(bad)), ("chat", openai_deployment(good))],
        router={"routing_strategy": "simple-shuffle", "cooldown_time": 60},
        settings={"database_url": f"sqlite:///{tmp_path / 'k.db'}", "worker": {"concurrency": 4}},
    )
    lines = chat_lines(60, model="chat")
    result = run_cli("-c", str(config), "run", str(write_jsonl(tmp_path / "in.jsonl", lines)),
                     "-o", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr.decode()  # no job failed for one bad key
    assert good.stats()["completed"] == 60
    # The first 401 cools the deployment for the fleet: only calls already under way reach it.
    assert bad.stats()["requests"] <= 4


def test_missing_key_variable_fails_the_jobs_with_a_clear_message(tmp_path, mock_provider, write_config):
    config = write_config(
        [("chat", openai_deployment(mock_provider, api_key="os.environ/LLMD_TEST_UNSET_KEY"))],
        settings={"database_url": f"sqlite:///{tmp_path / 'm.db'}"},
    )
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(1, model="chat"))
    result = run_cli("-c", str(config), "run", str(source), "-o", str(tmp_path / "out.jsonl"),
                     "--errors", str(tmp_path / "err.jsonl"))
    assert result.returncode == 1
    error = json.loads((tmp_path / "err.jsonl").read_text())
    assert error["error"]["code"] == "missing_credentials"
    assert "LLMD_TEST_UNSET_KEY" in error["error"]["message"]
    assert mock_provider.stats()["requests"] == 0


def test_provider_returning_invalid_json_fails_the_job_after_retries(tmp_path, mock_provider, write_config):
    config = write_config(
        [("chat", openai_deployment(mock_provider))],
        router={"num_retries": 2},
        settings={"database_url": f"sqlite:///{tmp_path / 'j.db'}"},
    )
    line = {"custom_id": "broken", "model": "chat", "messages": [{"role": "user", "content": "[[mock:invalid_json]]"}]}
    source = write_jsonl(tmp_path / "in.jsonl", [line] + chat_lines(2, model="chat"))
    result = run_cli("-c", str(config), "run", str(source), "-o", str(tmp_path / "out.jsonl"),
                     "--errors", str(tmp_path / "err.jsonl"))
    assert result.returncode == 1
    error = json.loads((tmp_path / "err.jsonl").read_text())
    assert error["custom_id"] == "broken"
    assert error["error"]["code"] == "invalid_response"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    assert mock_provider.stats()["requests"] == 3 + 2  # 1 try + 2 retries, plus the two good ones
