"""``llm-dispatch serve`` itself: refusals at start, metrics, and a graceful stop."""

from __future__ import annotations

import secrets

import httpx
import openai
import pytest
import yaml

from tests.api.conftest import ADMIN_ENV, write_api_config
from tests.api.server import ApiServer
from tests.conftest import cli_env, run_cli

pytestmark = pytest.mark.slow


def test_embedded_mode_serves_one_process(tmp_path):
    config = write_api_config(tmp_path, database_url=f"sqlite:///{tmp_path / 'api.db'}")
    result = run_cli("-c", str(config), "serve", "--workers", "2", env=cli_env(**{ADMIN_ENV: "x" * 20}))
    assert result.returncode == 2
    assert "--workers above 1 needs redis_url" in result.stderr.decode()


def test_a_missing_admin_key_variable_stops_the_start(tmp_path):
    config = write_api_config(tmp_path, database_url=f"sqlite:///{tmp_path / 'api.db'}")
    result = run_cli("-c", str(config), "serve", env=cli_env())
    assert result.returncode == 2
    assert ADMIN_ENV in result.stderr.decode() and "admin_key" in result.stderr.decode()


def _litellm_master_key_config(tmp_path):
    """The test config with its admin key given the LiteLLM way only."""
    config = write_api_config(tmp_path, database_url=f"sqlite:///{tmp_path / 'api.db'}")
    document = yaml.safe_load(config.read_text())
    del document["dispatcher_settings"]["api"]["admin_key"]
    document["general_settings"] = {"master_key": "os.environ/LITELLM_MASTER_KEY", "alerting": ["slack"]}
    config.write_text(yaml.safe_dump(document))
    return config


def test_a_litellm_master_key_opens_the_api_as_its_admin_key(tmp_path):
    master_key = "sk-" + secrets.token_urlsafe(24)
    server = ApiServer(_litellm_master_key_config(tmp_path), env=cli_env(LITELLM_MASTER_KEY=master_key))
    try:
        sdk = openai.OpenAI(base_url=server.base_url, api_key=master_key, max_retries=0, timeout=60)
        assert [m.id for m in sdk.models.list()] == ["chat", "other"]
        raw = sdk.chat.completions.with_raw_response.create(model="chat", messages=[{"role": "user", "content": "hi"}])
        assert raw.parse().choices[0].message.content == "Mock reply to: hi"
        # The admin reads any batch: here the completion's one-line batch.
        assert sdk.batches.retrieve(raw.headers["x-dispatcher-batch-id"]).request_counts.completed == 1
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.base_url, api_key="sk-not-the-master-key", max_retries=0).models.list()
    finally:
        server.stop()
    log = server.log()
    assert master_key not in log
    assert "general_settings (alerting) is LiteLLM proxy configuration" in log  # master_key is not ignored


def test_a_missing_master_key_variable_stops_the_start_naming_it(tmp_path):
    env = cli_env()
    env.pop("LITELLM_MASTER_KEY", None)
    result = run_cli("-c", str(_litellm_master_key_config(tmp_path)), "serve", env=env)
    assert result.returncode == 2
    assert "general_settings.master_key" in result.stderr.decode()
    assert "LITELLM_MASTER_KEY" in result.stderr.decode()


def test_metrics_count_requests_by_route_template(embedded_api):
    sdk = embedded_api.sdk()
    sdk.models.list()
    with pytest.raises(openai.NotFoundError):
        sdk.batches.retrieve("batch_nothing")
    text = httpx.get(f"{embedded_api.server.root_url}/metrics", timeout=10).text
    assert 'llmd_api_requests_total{method="GET",route="/v1/models",status="200"}' in text
    assert 'llmd_api_requests_total{method="GET",route="/v1/batches/{batch_id}",status="404"}' in text
    assert "batch_nothing" not in text
    assert "llmd_api_request_seconds_bucket" in text


def test_the_openapi_schema_describes_the_routes(embedded_api):
    schema = httpx.get(f"{embedded_api.server.root_url}/openapi.json", timeout=10).json()
    assert {"/v1/files", "/v1/files/{file_id}/content", "/v1/batches", "/v1/batches/{batch_id}/cancel",
            "/v1/chat/completions", "/v1/models"} <= set(schema["paths"])
    upload = schema["paths"]["/v1/files"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["required"] == ["file", "purpose"]
