"""Limits on a batch's name, idempotency key and metadata, checked before anything is stored.

Names and keys are bounded by their columns (a longer value would fail the insert with the
statement in the error); metadata by OpenAI's Batch API limits, so batches move between the two.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from dispatcher.errors import UsageError
from dispatcher.store.tables import batches

if TYPE_CHECKING:
    from dispatcher.client.submit import SubmitOptions

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def check_options(options: SubmitOptions) -> None:
    """Refuse names, keys and metadata the store or OpenAI's API would not take (nothing is
    stored yet, so a too-long value costs nothing)."""
    limits = (("name", "--name", options.name), ("idempotency_key", "--idempotency-key", options.idempotency_key))
    for column, flag, value in limits:
        limit = batches.c[column].type.length
        if value is not None and len(value) > limit:
            raise UsageError(f"{flag} is {len(value)} characters long; at most {limit} are allowed")
        if value is not None and "\x00" in value:
            raise UsageError(f"{flag} contains a NUL character, which the database cannot store")
    metadata = options.metadata or {}
    if len(metadata) > MAX_METADATA_PAIRS:
        raise UsageError(f"--metadata has {len(metadata)} pairs; at most {MAX_METADATA_PAIRS} are allowed")
    for key, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if len(key) > MAX_METADATA_KEY:
            raise UsageError(
                f"--metadata key {key[:20]!r}... is {len(key)} characters long; at most {MAX_METADATA_KEY} are allowed"
            )
        if len(text) > MAX_METADATA_VALUE:
            raise UsageError(
                f"--metadata value of {key!r} is {len(text)} characters long; at most {MAX_METADATA_VALUE} are allowed"
            )
        if "\x00" in key or "\x00" in text:
            raise UsageError(f"--metadata {key!r} contains a NUL character, which the database cannot store")
