"""Retention through the API: downloading an ended batch's output file marks its results
downloaded (so prune may take it); a pruned batch's output file answers 410."""

from __future__ import annotations

import time

import openai
import pytest

from tests.api.conftest import batch_lines, upload, wait_for_batch

LATER = 3600.0


def test_output_download_allows_prune_and_a_pruned_file_is_gone(embedded_api):
    sdk = embedded_api.sdk()
    uploaded = upload(sdk, batch_lines(2, prefix="kept"))
    batch = sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    batch = wait_for_batch(sdk, batch.id)
    client = embedded_api.library()

    before = client.prune(finished_before=time.time() + LATER, dry_run=True)
    assert batch.id not in before.batches and before.skipped_undownloaded >= 1

    assert len(sdk.files.content(batch.output_file_id).content.splitlines()) == 2
    assert client.prune(finished_before=time.time() + LATER).batches == [batch.id]

    with pytest.raises(openai.APIStatusError) as gone:
        sdk.files.content(batch.output_file_id)
    assert gone.value.status_code == 410
    assert "pruned" in str(gone.value)
    assert sdk.batches.retrieve(batch.id).request_counts.completed == 2  # the batch stays
