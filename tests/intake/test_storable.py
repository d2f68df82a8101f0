"""The screen and the walk that find what the store cannot hold (deep nesting, NUL)."""

from __future__ import annotations

import random

import orjson

from dispatcher.intake.storable import MAX_DEPTH, ORJSON_MAX_DEPTH, find_unstorable, needs_check


LEAVES = ["text", "[", "]]", "{[", "a\x00b", "C:\\u0000", 7, None, True]
KEYS = ["k", "x", "b]", "{c", "d\x00"]


def _random_value(rng: random.Random, depth: int):
    """A chain of containers ``depth`` deep (sometimes cut short), with leaves beside it:
    brackets inside strings, NUL characters, and the text of an escape that is not one."""
    if depth == 0 or rng.random() < 0.01:
        return rng.choice(LEAVES)
    children = [rng.choice(LEAVES) for _ in range(rng.randint(0, 2))]
    children.insert(rng.randint(0, len(children)), _random_value(rng, depth - 1))
    if rng.random() < 0.5:
        return children
    return {rng.choice(KEYS if rng.random() < 0.02 else KEYS[:2]) + str(i): child
            for i, child in enumerate(children)}


def test_the_screen_never_lets_through_what_the_walk_refuses():
    rng = random.Random(20240611)
    flagged = 0
    for _ in range(400):
        line = {"custom_id": "x", "messages": [{"role": "user", "content": "hi"}],
                "metadata": _random_value(rng, rng.choice([3, 40, MAX_DEPTH - 3, MAX_DEPTH + 5]))}
        raw = orjson.dumps(line)
        if find_unstorable(orjson.loads(raw)) is not None:
            flagged += 1
            assert needs_check(raw, orjson.loads(raw)), raw[:200]
            assert needs_check(raw.decode(), orjson.loads(raw))
            assert needs_check(line, line)
    assert flagged > 50  # the generator does produce unstorable lines


def test_the_screen_passes_ordinary_and_schema_heavy_lines():
    chat = {"custom_id": "a", "messages": [{"role": "user", "content": "a [link](x) {b}"}]}
    properties = {f"p{k}": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}}
                  for k in range(40)}
    schema = {**chat, "response_format": {"type": "json_schema", "json_schema": {"schema": {"properties": properties}}}}
    assert orjson.dumps(schema).count(b"{") > MAX_DEPTH  # many containers, few levels
    for line in (chat, schema):
        assert not needs_check(orjson.dumps(line), line)
        assert not needs_check(line, line)


def test_paths_name_the_field():
    cases = [
        ({"custom_id": "a\x00"}, "custom_id"),
        ({"body": {"messages": [{"content": ["ok", "\x00"]}]}}, "body.messages[0].content..."),
        ({"body": {"odd key": "\x00"}}, 'body["odd key"]'),
        ({"a": [["\x00"]]}, "a[0][0]"),
    ]
    for data, path in cases:
        found = find_unstorable(data)
        assert found is not None and found.kind == "nul" and found.path == path, (data, found)


def test_depth_is_counted_from_the_line():
    inner: list = []
    line = {"metadata": inner}
    for _ in range(MAX_DEPTH - 2):  # the line is level 1, metadata level 2
        inner.append([])
        inner = inner[0]
    assert find_unstorable(line) is None
    inner.append([])
    found = find_unstorable(line)
    assert found is not None and found.kind == "depth" and found.path == "metadata[0][0][0]..."


def test_brackets_inside_strings_cannot_hide_depth():
    """Strings "]" before and "[" after each level keep the raw bracket count shallow."""
    value: list = ["leaf"]
    for _ in range(MAX_DEPTH + 20):
        value = ["]", value, "["]
    raw = orjson.dumps({"metadata": value})
    assert find_unstorable(orjson.loads(raw)).kind == "depth"
    assert needs_check(raw, orjson.loads(raw))


def _nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_orjson_writes_exactly_the_depth_the_screen_assumes():
    """The screen asks orjson; if a new orjson writes deeper, the boundary moves: fix the constant."""
    orjson.dumps(_nested(ORJSON_MAX_DEPTH))
    try:
        orjson.dumps(_nested(ORJSON_MAX_DEPTH + 1))
    except orjson.JSONEncodeError:
        pass
    else:
        raise AssertionError(f"orjson now writes more than {ORJSON_MAX_DEPTH} levels")


def test_the_screen_boundary_is_max_depth():
    for levels, expected in ((MAX_DEPTH, False), (MAX_DEPTH + 1, True)):
        line = {"metadata": _nested(levels - 1)}  # the line itself is one level
        raw = orjson.dumps(line)
        assert needs_check(raw, line) is expected
        assert (find_unstorable(line) is not None) is expected
