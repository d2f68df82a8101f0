"""``POST /v1/batches`` with ``via: provider-batch`` (the SDK's ``extra_body``): the batch runs
through the provider's own batch API, and the answer reads as any batch's does."""

from __future__ import annotations

import time

import openai
import pytest

from tests.api.conftest import batch_lines, read_lines, start_api, upload, wait_for_batch, write_api_config
from tests.conftest import openai_deployment

pytestmark = pytest.mark.slow


def test_a_batch_created_with_via_provider_batch_runs_at_the_providers_batch_api(tmp_path, start_mock_provider):
    provider = start_mock_provider(batch_delay_s=0.3)
    config = write_api_config(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'api.db'}",
        deployments=[("chat", openai_deployment(provider, input_cost_per_token=1e-6, output_cost_per_token=1e-6))],
        settings={"provider_batches": {"check_interval": 0.1, "first_poll": 0.1, "max_poll_interval": 0.3}},
    )
    api = start_api(config)
    try:
        sdk = api.sdk()
        lines = batch_lines(20)
        created = sdk.batches.create(input_file_id=upload(sdk, lines).id, endpoint="/v1/chat/completions",
                                     completion_window="24h", extra_body={"via": "provider-batch"})
        assert created.model_extra["via"] == "provider-batch"
        batch = wait_for_batch(sdk, created.id)
        assert batch.status == "completed" and batch.request_counts.completed == 20
        output = read_lines(sdk, batch.output_file_id)
        assert [line["custom_id"] for line in output] == [line["custom_id"] for line in lines]
        assert all(line["response"]["status_code"] == 200 for line in output)
        # The last results end the batch; the part is marked imported right after, in its own
        # transaction (remote/driver.py _import): a read in between sees it "ended".
        deadline = time.monotonic() + 5
        while (part := batch.model_extra["provider_batches"][0])["state"] == "ended" and time.monotonic() < deadline:
            time.sleep(0.05)
            batch = sdk.batches.retrieve(created.id)
        assert len(batch.model_extra["provider_batches"]) == 1
        assert part["state"] == "imported" and part["lines"] == 20
        stats = provider.stats()
        assert stats["batches"]["openai"]["batches_created"] == 1
        assert stats["by_route"].get("openai.chat", {}).get("requests", 0) == 0

        with pytest.raises(openai.BadRequestError) as refused:
            sdk.batches.create(input_file_id=upload(sdk, lines).id, endpoint="/v1/chat/completions",
                               completion_window="24h", extra_body={"via": "overnight"})
        assert refused.value.body["param"] == "via"
    finally:
        api.close()
