"""scrub_secrets: configured secret values out of provider answers (raw JSON bytes)."""

from __future__ import annotations

import json
import uuid

import orjson

from dispatcher.config.secrets import remember_secret, scrub_secrets


def _secret(shape: str = "sk-scrub-{}") -> str:
    value = shape.format(uuid.uuid4().hex[:16])
    remember_secret(value)
    return value


def _answer(content: str, *, ensure_ascii: bool = False, escape_slash: bool = False) -> bytes:
    text = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]},
                      ensure_ascii=ensure_ascii)
    return (text.replace("/", "\\/") if escape_slash else text).encode()


def test_a_secret_in_an_answer_is_masked_and_the_answer_stays_valid_json():
    key = _secret()
    scrubbed = scrub_secrets(_answer(f"Your key is {key}, and again: {key}."))
    assert key.encode() not in scrubbed
    assert orjson.loads(scrubbed)["choices"][0]["message"]["content"] == "Your key is ***, and again: ***."


def test_json_escaped_forms_of_a_secret_are_masked_too():
    key = _secret("k/ey+é\"{}")  # a slash, a non-ASCII letter and a quote: escaped in JSON
    for ensure_ascii in (False, True):
        for escape_slash in (False, True):
            body = _answer(f"echo {key}", ensure_ascii=ensure_ascii, escape_slash=escape_slash)
            scrubbed = scrub_secrets(body)
            assert orjson.loads(scrubbed)["choices"][0]["message"]["content"] == "echo ***", body


def test_text_merely_shaped_like_a_key_is_left_alone():
    _secret()
    body = _answer("Set api_key = 'sk-example-not-a-real-key-123' and send 'Bearer abcdefgh'.")
    assert scrub_secrets(body) is body  # unchanged, and not even copied


def test_a_match_starting_inside_a_json_escape_is_not_the_secret():
    key = _secret("n{}")  # "\n" followed by the rest of the key decodes to a newline, not the key
    body = _answer("line\n" + key[1:] + " and " + key)
    content = orjson.loads(scrub_secrets(body))["choices"][0]["message"]["content"]
    assert content == "line\n" + key[1:] + " and ***"


def test_a_secret_remembered_later_is_scrubbed_from_then_on():
    scrub_secrets(b"{}")  # the pattern is built for the secrets known so far
    late = _secret("sk-late-{}")
    assert late.encode() not in scrub_secrets(_answer(late))
