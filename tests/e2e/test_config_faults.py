"""Config faults seen from the command line: exit 2 with the key path, and one bad deployment
never takes the others (or the workers) down."""

from __future__ import annotations

import json

import pytest

from tests.conftest import chat_lines, cli_env, openai_deployment, run_cli, write_jsonl
from tests.e2e.test_distributed import wait_for_batch
from tests.e2e.workers import WorkerFleet

pytestmark = pytest.mark.slow

HUGE_API_BASE = "https://x.example/" + "A" * 130_000


@pytest.mark.parametrize("settings, env, expected", [
    ({"redis_url": "localhost:6379"}, {}, "dispatcher_settings.redis_url: 'localhost:6379' is not a URL"),
    ({"redis_url": "os.environ/LLMD_TEST_UNSET"}, {},
     "dispatcher_settings.redis_url: environment variable LLMD_TEST_UNSET is not set"),
    ({"database_url": "mysql://u@db/x"}, {}, "dispatcher_settings.database_url: 'mysql://u@db/x': 'mysql' is not supported"),
    ({}, {"LLM_DISPATCH_DATABASE_URL": "notaurl"}, "$LLM_DISPATCH_DATABASE_URL: 'notaurl' is not a URL"),
])
def test_bad_service_urls_exit_2_with_the_key_path(tmp_path, write_config, settings, env, expected):
    config = write_config([("chat", {"model": "mock/echo"})], settings={"database_url": f"sqlite:///{tmp_path / 'x.db'}", **settings})
    environment = cli_env(**env)
    environment.pop("LLMD_TEST_UNSET", None)
    result = run_cli("-c", str(config), "list", env=environment)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert expected in stderr
    assert "Traceback" not in stderr


def test_run_serves_the_good_group_when_another_deployment_has_a_broken_api_base(
    tmp_path, mock_provider, write_config
):
    config = write_config(
        [("chat", openai_deployment(mock_provider)),
         ("broken", {"model": "openai/x", "api_base": "os.environ/LLMD_TEST_HUGE_BASE"})],
        settings={"database_url": f"sqlite:///{tmp_path / 'b.db'}"},
    )
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(5, model="chat"))
    out = tmp_path / "out.jsonl"
    result = run_cli("-c", str(config), "run", str(source), "-o", str(out),
                     env=cli_env(LLMD_TEST_HUGE_BASE=HUGE_API_BASE))
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert len(out.read_text().splitlines()) == 5
    assert "1 of 2 model_list entries skipped" in stderr
    assert "model_list[1].litellm_params.api_base" in stderr and "longer than 2048 characters" in stderr
    assert "A" * 200 not in stderr


def test_worker_fleet_starts_and_serves_despite_a_broken_deployment(
    tmp_path, redis_server, redis_namespace, mock_provider, write_config
):
    config = write_config(
        [("chat", openai_deployment(mock_provider)),
         ("broken", {"model": "openai/x", "api_base": "os.environ/LLMD_TEST_HUGE_BASE"}),
         ("vertex", {"model": "vertex_ai/gemini-1.5-pro", "vertex_project": "p"})],
        settings={"database_url": f"sqlite:///{tmp_path / 'w.db'}", "redis_url": redis_server,
                  "namespace": redis_namespace},
    )
    env = cli_env(LLMD_TEST_HUGE_BASE=HUGE_API_BASE)
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(20, model="chat"))
    submitted = run_cli("-c", str(config), "submit", str(source), env=env)
    assert submitted.returncode == 0, submitted.stderr.decode()
    batch_id = submitted.stdout.decode().strip()
    with WorkerFleet(config, 1, env=env) as fleet:
        status = wait_for_batch(config, batch_id, timeout=40)
        assert fleet.stop() == 0, fleet.log()
    assert status["request_counts"] == {"total": 20, "completed": 20, "failed": 0}
    log = fleet.log()
    assert "2 of 3 model_list entries skipped" in log
    assert log.count("Traceback") == 0 and "restart" not in log.lower()


def test_litellm_proxy_config_runs_as_it_is(tmp_path, mock_provider):
    """A proxy-style file: bare names, vertex_ai/bedrock beside an openai group, LiteLLM sections."""
    config = tmp_path / "proxy.yaml"
    config.write_text(f"""
model_list:
  - model_name: chat
    litellm_params: {{model: openai/mock-gpt, api_base: "{mock_provider.base_url}", api_key: sk-test-key-0000}}
  - model_name: chat
    litellm_params: {{model: vertex_ai/gemini-1.5-pro, vertex_project: my-project}}
  - model_name: claude
    litellm_params: {{model: bedrock/anthropic.claude-3-haiku, aws_region_name: us-east-1}}
  - model_name: "*"
    litellm_params: {{model: openai/*}}
litellm_settings: {{drop_params: true, callbacks: [otel], fallbacks: [{{chat: [claude]}}]}}
general_settings: {{master_key: sk-1234, database_url: "postgresql://u:p@h/db"}}
finetune_settings: [{{custom_llm_provider: openai}}]
files_settings: [{{custom_llm_provider: openai}}]
guardrails: [{{guardrail_name: g, litellm_params: {{guardrail: aporia, mode: pre_call}}}}]
mcp_servers: {{docs: {{url: "https://mcp.example.com"}}}}
router_settings: {{redis_host: localhost, redis_port: 6379}}
dispatcher_settings: {{database_url: "sqlite:///{tmp_path / 'p.db'}"}}
""")
    source = write_jsonl(tmp_path / "in.jsonl", chat_lines(3, model="chat"))
    out = tmp_path / "out.jsonl"
    result = run_cli("-c", str(config), "run", str(source), "-o", str(out))
    assert result.returncode == 0, result.stderr.decode()
    assert [json.loads(line)["response"]["status_code"] for line in out.read_text().splitlines()] == [200] * 3
