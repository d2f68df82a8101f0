"""Stored bodies (store/bodies.py): packed when that is shorter, read back as the same text."""

from __future__ import annotations

import json

from dispatcher.store.bodies import DEFLATED, pack, unpack

RESPONSE = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris is the capital of France."},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22},
}, separators=(",", ":"))


def test_a_chat_response_is_packed_to_under_half():
    stored = pack(RESPONSE)
    assert stored.startswith(DEFLATED)
    assert len(stored) < len(RESPONSE) / 2
    assert unpack(stored) == RESPONSE


def test_text_that_does_not_shrink_is_stored_as_it_is():
    short = '{"a":1}'  # deflate's few bytes of framing would make it longer
    assert pack(short) == short.encode()
    assert unpack(pack(short)) == short


def test_rows_stored_before_packing_read_as_they_are():
    assert unpack('{"messages": []}') == '{"messages": []}'  # SQLite text
    assert unpack(b'{"messages": []}') == '{"messages": []}'  # PostgreSQL bytea from text
    assert unpack(memoryview(pack("é" * 50))) == "é" * 50
