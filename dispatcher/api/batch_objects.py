"""The Batch object of the HTTP API: the one ``status --json`` prints, shaped where the openai
SDK reads it differently.

``BatchInfo.to_openai`` is the base (OpenAI's status, every timestamp, ``request_counts``,
``errors``, ``metadata``, and our fields beside OpenAI's: ``dispatcher_status``, priority,
cost...). A batch its cost cap stopped is ``cancelled`` there, with an ``errors.data`` entry
``budget_exceeded`` saying what was spent. Here the input and result file ids are filled in and
``usage`` takes the SDK's ``BatchUsage`` shape.
"""

from __future__ import annotations

from typing import Any

from dispatcher.api.result_files import result_file_ids
from dispatcher.client.batch_info import BatchInfo


def batch_object(info: BatchInfo) -> dict[str, Any]:
    batch = info.to_openai()
    batch["input_file_id"] = info.input_file_id or ""
    batch["model"] = info.model
    batch.update(result_file_ids(info))
    batch["usage"] = {
        "input_tokens": info.prompt_tokens,
        "input_tokens_details": {"cached_tokens": info.cached_tokens},
        "output_tokens": info.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": info.total_tokens,
    }
    return batch
