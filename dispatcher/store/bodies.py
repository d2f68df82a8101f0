"""How request and response bodies are stored: deflated against a preset dictionary of the
JSON that every chat or embeddings body repeats.

A body of a few hundred bytes is never compressed by PostgreSQL (TOAST starts at about 2 kB),
yet it is copied into every row version a job's updates leave behind. Deflate with a preset
dictionary shrinks even short bodies, because their keys ("messages", "role", "content",
"usage", "prompt_tokens"...) are found in the dictionary. ``PackedText`` does it in the column
type, so every statement that reads or writes ``jobs.body`` or ``jobs.response`` through
SQLAlchemy sees text; raw SQL must call ``pack`` / ``unpack`` itself.

Stored form: ``b"\\x00"`` + raw deflate; or the UTF-8 text as it is when deflate would not make
it shorter (and for rows written before migration 0010). JSON never starts with a NUL byte.
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa

DEFLATED = b"\x00"
_LEVEL = 6
_WINDOW_BITS = -15  # raw deflate: no zlib header or checksum (a few bytes per body)
# Later bytes are cheaper to refer to, so the most common strings come last. Changing this
# dictionary makes every stored body unreadable: add a new marker and dictionary instead.
_DICTIONARY = (
    b'"logprobs":null,"finish_reason":"length"}],"stop":"tool_calls","tools":[{"type":"function",'
    b'"function":{"name":"arguments":"parameters":{"type":"object","properties":{"description":'
    b'"response_format":{"type":"json_schema","json_object","temperature":0,"top_p":1,"n":1,'
    b'"seed":"user":"metadata":"input":"encoding_format":"float","dimensions":"object":"list",'
    b'"data":[{"object":"embedding","index":0,"embedding":[0.0'
    b'"service_tier":"default","system_fingerprint":"fp_","refusal":null,"annotations":[]},'
    b'"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":'
    b'{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,'
    b'"rejected_prediction_tokens":0}}'
    b'{"messages":[{"role":"system","content":"You are a helpful assistant."},'
    b'{"role":"user","content":"'
    b'"max_completion_tokens":"max_tokens":'
    b'{"id":"chatcmpl-","object":"chat.completion","created":17,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"The '
    b'"},"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":1'
)


def pack(text: str) -> bytes:
    """The stored form of a body: deflated when that makes it shorter."""
    raw = text.encode()
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WINDOW_BITS, zdict=_DICTIONARY)
    packed = DEFLATED + packer.compress(raw) + packer.flush()
    return packed if len(packed) < len(raw) else raw


def unpack(stored: bytes | memoryview | str) -> str:
    """The body's text from its stored form (text as it is: a row stored before 0010)."""
    if isinstance(stored, str):
        return stored
    stored = bytes(stored)
    if stored[:1] != DEFLATED:
        return stored.decode()
    unpacker = zlib.decompressobj(_WINDOW_BITS, zdict=_DICTIONARY)
    return (unpacker.decompress(stored[1:]) + unpacker.flush()).decode()


class PackedText(sa.TypeDecorator):
    """A text column stored as ``pack`` bytes (bytea / BLOB); reads and writes are text."""

    impl = sa.LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> bytes | None:
        return None if value is None else pack(value)

    def process_result_value(self, value, dialect) -> str | None:
        return None if value is None else unpack(value)
