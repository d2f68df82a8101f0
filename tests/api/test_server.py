"""``llm-dispatch serve`` itself: refusals at start, metrics, and a graceful stop."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.api.conftest import ADMIN_ENV, write_api_config
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
