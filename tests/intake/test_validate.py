"""Line validation of submitted requests: both shapes, ids, refusals."""

from __future__ import annotations

import json

import pytest

from dispatcher.intake.validate import VALIDATION_CODES, JobSpec, LineValidator, Problem, invalid_line_text

MSG = [{"role": "user", "content": "Hello there"}]


def _validator(groups=("gpt", "cheap"), default_group=None, default_max_tokens=100):
    return LineValidator(
        known_groups=groups, default_group=default_group, default_max_tokens=default_max_tokens
    )


def _line(obj) -> bytes:
    return json.dumps(obj).encode()


def _full(custom_id="r1", **body):
    body.setdefault("model", "gpt")
    body.setdefault("messages", MSG)
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def _spec(result) -> JobSpec:
    assert isinstance(result, JobSpec), result
    return result


def _problem(result, code) -> Problem:
    assert isinstance(result, Problem), result
    assert result.code == code, result
    assert result.code in VALIDATION_CODES
    return result


def test_openai_batch_form():
    spec = _spec(_validator().validate(3, _line(_full("req-1", max_tokens=50))))
    assert spec.line == 3
    assert spec.custom_id == "req-1"
    assert spec.model_group == "gpt"
    assert spec.priority is None
    assert spec.est_completion_tokens == 50
    assert spec.est_prompt_tokens > 0


def test_body_stored_compact_without_model():
    spec = _spec(_validator().validate(1, _line(_full("x", temperature=0))))
    assert " " not in spec.body.replace("Hello there", "")
    body = json.loads(spec.body)
    assert "model" not in body
    assert body == {"messages": MSG, "temperature": 0}


def test_short_form():
    line = {"custom_id": "s1", "model": "cheap", "messages": MSG, "priority": "high", "n": 2, "max_tokens": 30}
    spec = _spec(_validator().validate(1, _line(line)))
    assert spec.custom_id == "s1"
    assert spec.model_group == "cheap"
    assert spec.priority == 2
    assert json.loads(spec.body) == {"messages": MSG, "n": 2, "max_tokens": 30}
    assert spec.est_completion_tokens == 60  # max_tokens x n


def test_dict_input_is_accepted():
    spec = _spec(_validator().validate(1, {"model": "gpt", "messages": MSG}))
    assert spec.model_group == "gpt" and spec.custom_id is None


def test_str_input_is_accepted():
    spec = _spec(_validator().validate(1, json.dumps({"model": "gpt", "messages": MSG})))
    assert spec.model_group == "gpt"


def test_alternative_url_and_lowercase_method():
    line = _full()
    line["url"] = "/chat/completions"
    line["method"] = "post"
    assert _spec(_validator().validate(1, _line(line))).custom_id == "r1"


def test_generated_custom_id_uses_line_number():
    v = _validator()
    assert _spec(v.validate(7, _line({"model": "gpt", "messages": MSG}))).custom_id is None
    nulled = {"custom_id": None, "model": "gpt", "messages": MSG}
    assert _spec(v.validate(8, _line(nulled))).custom_id is None
    assert (v.generated_id(7), v.generated_id(8)) == ("line-7", "line-8")


def test_generated_custom_id_avoids_ids_given_earlier_or_later():
    v = _validator()
    _spec(v.validate(1, _line({"custom_id": "line-2", "model": "gpt", "messages": MSG})))
    _spec(v.validate(2, _line({"model": "gpt", "messages": MSG})))
    _spec(v.validate(3, _line({"model": "gpt", "messages": MSG})))
    # A later line names itself after the generated id an earlier line would have had.
    _spec(v.validate(4, _line({"custom_id": "line-3", "model": "gpt", "messages": MSG})))
    assert v.generated_id(2) == "line-2-2"
    assert v.generated_id(3) == "line-3-2"


def test_duplicate_custom_id_names_first_line():
    v = _validator()
    _spec(v.validate(4, _line(_full("dup"))))
    problem = _problem(v.validate(9, _line(_full("dup"))), "duplicate_custom_id")
    assert "line 4" in problem.message
    assert problem.message.startswith("line 9:")
    assert problem.param == "custom_id"
    assert problem.line == 9


def test_refused_line_does_not_reserve_its_custom_id():
    v = _validator()
    _problem(v.validate(1, _line(_full("again", model="nope"))), "unknown_model")
    assert _spec(v.validate(2, _line(_full("again")))).custom_id == "again"


@pytest.mark.parametrize("custom_id", ["", 5, ["a"]])
def test_invalid_custom_id(custom_id):
    _problem(_validator().validate(1, _line(_full(custom_id))), "invalid_custom_id")


def test_custom_id_too_long():
    _problem(_validator().validate(1, _line(_full("x" * 513))), "invalid_custom_id")
    _spec(_validator().validate(1, _line(_full("x" * 512))))


def test_bad_json():
    problem = _problem(_validator().validate(5, b'{"custom_id": "a",'), "invalid_json")
    assert problem.message.startswith("line 5: not valid JSON")


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_non_object(raw):
    problem = _problem(_validator().validate(2, raw), "invalid_request")
    assert "expected a JSON object" in problem.message


@pytest.mark.parametrize("messages", [None, [], "hi", {"role": "user"}])
def test_missing_or_empty_messages(messages):
    body = {"model": "gpt"}
    if messages is not None:
        body["messages"] = messages
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body}
    problem = _problem(_validator().validate(1, _line(line)), "missing_messages")
    assert problem.param == "body.messages"


def test_message_without_role():
    messages = [{"role": "system", "content": "x"}, {"content": "no role"}]
    problem = _problem(_validator().validate(1, _line(_full(messages=messages))), "invalid_messages")
    assert problem.param == "body.messages[1]"


def test_message_not_object():
    problem = _problem(_validator().validate(1, _line(_full(messages=["hello"]))), "invalid_messages")
    assert problem.param == "body.messages[0]"


def test_unknown_model_lists_known_groups():
    problem = _problem(_validator().validate(1, _line(_full(model="gpt-5"))), "unknown_model")
    assert "'gpt-5'" in problem.message
    assert "cheap, gpt" in problem.message
    assert problem.param == "body.model"


def test_non_string_model():
    _problem(_validator().validate(1, _line(_full(model=3))), "unknown_model")


def test_missing_model_without_default():
    line = {"custom_id": "a", "messages": MSG}
    problem = _problem(_validator().validate(1, _line(line)), "missing_model")
    assert "--model" in problem.message


def test_default_group_used_when_no_model():
    v = _validator(default_group="cheap")
    spec = _spec(v.validate(1, _line({"messages": MSG})))
    assert spec.model_group == "cheap"
    # an explicit model still wins over the default group
    assert _spec(v.validate(2, _line({"model": "gpt", "messages": MSG}))).model_group == "gpt"


def test_unknown_default_group_is_refused():
    v = _validator(default_group="elsewhere")
    _problem(v.validate(1, _line({"messages": MSG})), "unknown_model")


@pytest.mark.parametrize("url", ["/v1/responses", "", None])
def test_wrong_url(url):
    line = _full()
    line["url"] = url
    problem = _problem(_validator().validate(1, _line(line)), "invalid_url")
    assert problem.param == "url"


@pytest.mark.parametrize("method", ["GET", "PUT", 1])
def test_wrong_method(method):
    line = _full()
    line["method"] = method
    problem = _problem(_validator().validate(1, _line(line)), "invalid_method")
    assert problem.param == "method"


def test_unexpected_top_level_keys_in_full_form():
    line = _full()
    line["temperature"] = 0.5
    line["extra"] = 1
    problem = _problem(_validator().validate(1, _line(line)), "invalid_request")
    assert "extra, temperature" in problem.message
    assert problem.param == "extra"


def test_full_form_body_must_be_object():
    line = _full()
    line["body"] = "nope"
    _problem(_validator().validate(1, _line(line)), "invalid_body")
    line.pop("body")
    _problem(_validator().validate(1, _line(line)), "invalid_body")


@pytest.mark.parametrize("field", ["api_key", "api_base", "base_url", "extra_headers", "api_version"])
def test_forbidden_body_fields(field):
    problem = _problem(
        _validator().validate(1, _line(_full(**{field: "x"}))), "forbidden_field"
    )
    assert problem.param == f"body.{field}"
    assert f"body.{field} is not allowed" in problem.message


def test_forbidden_field_in_short_form():
    line = {"model": "gpt", "messages": MSG, "api_key": "sk-xxxxxxxxxxxx"}
    _problem(_validator().validate(1, _line(line)), "forbidden_field")


def test_stream_true_refused():
    problem = _problem(_validator().validate(1, _line(_full(stream=True))), "invalid_request")
    assert problem.param == "body.stream"
    _spec(_validator().validate(1, _line(_full(stream=False))))


@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True])
@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_must_be_positive_int(key, value):
    problem = _problem(_validator().validate(1, _line(_full(**{key: value}))), "invalid_request")
    assert problem.param == f"body.{key}"


def test_max_completion_tokens_estimate():
    spec = _spec(_validator().validate(1, _line(_full(max_completion_tokens=77))))
    assert spec.est_completion_tokens == 77


@pytest.mark.parametrize("value, expected", [(0, 0), (9, 9), ("3", 3), ("urgent", 0), ("bulk", 9), ("Low", 7)])
def test_per_line_priority(value, expected):
    line = _full()
    line["priority"] = value
    assert _spec(_validator().validate(1, _line(line))).priority == expected


@pytest.mark.parametrize("value", [10, -1, "soon", 2.5, True, None, [1]])
def test_bad_priority(value):
    line = _full()
    line["priority"] = value
    problem = _problem(_validator().validate(1, _line(line)), "invalid_priority")
    assert problem.param == "priority"


def test_priority_not_kept_in_short_form_body():
    spec = _spec(_validator().validate(1, _line({"model": "gpt", "messages": MSG, "priority": 1})))
    assert "priority" not in json.loads(spec.body)
    assert spec.priority == 1


def test_token_estimates_filled():
    long = [{"role": "user", "content": "word " * 400}]
    short = _spec(_validator().validate(1, _line(_full("a"))))
    longer = _spec(_validator().validate(2, _line(_full("b", messages=long))))
    assert longer.est_prompt_tokens > short.est_prompt_tokens >= 1
    assert short.est_completion_tokens == 100  # the validator's default_max_tokens


def test_problem_as_dict_shape():
    problem = _problem(_validator().validate(3, _line(_full(model="nope"))), "unknown_model")
    assert problem.as_dict() == {
        "code": "unknown_model",
        "message": problem.message,
        "param": "body.model",
        "line": 3,
    }


def test_storable_id_for_invalid():
    v = _validator()
    _spec(v.validate(1, _line(_full("taken"))))
    assert v.storable_id_for_invalid(2, b"not json") is None  # named later by generated_id
    assert v.storable_id_for_invalid(3, _line({"custom_id": "fresh"})) == "fresh"
    assert v.storable_id_for_invalid(4, _line({"custom_id": "taken"})) is None
    assert v.generated_id(2) == "line-2"


def test_bytes_that_are_not_utf8_are_named_with_their_column():
    problem = _problem(_validator().validate(2, b'{"messages": "caf\xe9"}\n'), "invalid_json")
    assert problem.message == "line 2: not UTF-8 text: byte 0xe9 at column 18; save the file as UTF-8"


# -- embeddings bodies where chat is expected, legacy completions: say what to do -------------
# (embeddings lines themselves: test_validate_embeddings.py)

def test_cookbook_embeddings_line_is_named_as_embeddings():
    line = {"custom_id": "e1", "model": "gpt", "input": "The food was delicious"}
    problem = _problem(_validator().validate(1, _line(line)), "invalid_request")
    assert "embeddings request needs url /v1/embeddings" in problem.message
    assert problem.param == "body.input"


def test_embeddings_body_on_the_chat_url_is_named_as_embeddings():
    line = _full("e2")
    line["body"] = {"model": "gpt", "input": ["a", "b"]}
    problem = _problem(_validator().validate(1, _line(line)), "invalid_request")
    assert "embeddings request needs url /v1/embeddings" in problem.message


def test_legacy_completions_prompt_points_at_messages():
    problem = _problem(_validator().validate(1, _line({"model": "gpt", "prompt": "Say hi"})), "invalid_request")
    assert problem.param == "body.prompt" and "body.messages" in problem.message


# -- what the store cannot hold: deep nesting, NUL characters ------------------------------

def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [200, 254, 300, 1000])
def test_json_nested_past_the_limit_is_refused_with_the_limit(depth):
    """Nesting orjson parses (up to 1,024) but cannot write again (255) used to crash submit."""
    raw = ('{"custom_id": "deep", "model": "gpt", "messages": [{"role": "user", "content": "x"}],'
           f' "metadata": {_nested(depth)}}}').encode()
    problem = _problem(_validator().validate(4, raw), "invalid_request")
    assert problem.message.startswith("line 4: JSON nested deeper than 128 levels")
    assert problem.param == "body.metadata[0][0][0]..."


def test_json_nested_past_what_the_parser_reads_names_the_same_limit():
    raw = ('{"messages": ' + _nested(1100) + "}").encode()
    problem = _problem(_validator().validate(2, raw), "invalid_json")
    assert problem.message == "line 2: JSON nested deeper than 128 levels; flatten the request"


def test_nesting_up_to_the_limit_is_accepted():
    # The line is level 1, its "metadata" value level 2: 126 more arrays reach 128.
    raw = ('{"model": "gpt", "messages": [{"role": "user", "content": "x"}], "metadata": '
           + _nested(127) + "}").encode()
    _spec(_validator().validate(1, raw))


def test_deep_dict_from_the_python_api_is_refused_not_crashed():
    value: dict = {}
    inner = value
    for _ in range(300):
        inner["k"] = {}
        inner = inner["k"]
    line = {"model": "gpt", "messages": MSG, "metadata": value}
    problem = _problem(_validator().validate(1, line), "invalid_request")
    assert "nested deeper than 128" in problem.message


def test_nul_in_custom_id_is_refused():
    raw = b'{"custom_id": "a\\u0000b", "model": "gpt", "messages": [{"role": "user", "content": "x"}]}'
    problem = _problem(_validator().validate(3, raw), "invalid_custom_id")
    assert problem.param == "custom_id"
    assert problem.message == (
        "line 3: custom_id contains a NUL character (\\u0000), which the database cannot store; remove it"
    )
    assert "\x00" not in problem.message


@pytest.mark.parametrize("form", ["short", "openai"])
def test_nul_in_a_body_string_is_refused_with_its_path(form):
    content = "hello\x00world"
    messages = [{"role": "system", "content": "ok"}, {"role": "user", "content": content}]
    line = {"custom_id": "n", "model": "gpt", "messages": messages} if form == "short" else _full("n", messages=messages)
    problem = _problem(_validator().validate(1, _line(line)), "invalid_request")
    assert problem.param == "body.messages[1].content"
    assert "NUL character" in problem.message


def test_nul_in_a_key_is_refused():
    line = _full("k", metadata={"a\x00b": 1})
    problem = _problem(_validator().validate(1, _line(line)), "invalid_request")
    assert problem.message.startswith("line 1: a key of body.metadata contains a NUL character")


def test_an_escaped_backslash_before_u0000_is_not_a_nul():
    raw = rb'{"model": "gpt", "messages": [{"role": "user", "content": "C:\\u0000 is a path"}]}'
    spec = _spec(_validator().validate(1, raw))
    assert json.loads(spec.body)["messages"][0]["content"] == "C:\\u0000 is a path"


def test_nul_in_a_dict_from_the_python_api():
    problem = _problem(_validator().validate(1, {"model": "gpt", "messages": [{"role": "user", "content": "\x00"}]}),
                       "invalid_request")
    assert problem.param == "body.messages[0].content"


def test_unpaired_surrogate_in_custom_id_from_the_python_api():
    problem = _problem(_validator().validate(1, {"custom_id": "x\ud800", "model": "gpt", "messages": MSG}),
                       "invalid_custom_id")
    assert "surrogate" in problem.message


def test_a_dict_that_is_not_json_is_refused_not_crashed():
    problem = _problem(_validator().validate(1, {"model": "gpt", "messages": MSG, "seed": {1, 2}}), "invalid_body")
    assert "cannot be written as JSON" in problem.message


def test_storable_id_for_invalid_never_takes_an_id_with_nul():
    v = _validator()
    assert v.storable_id_for_invalid(1, b'{"custom_id": "a\\u0000", "messages": 1}') is None
    assert v.generated_id(1) == "line-1"


def test_invalid_line_text_can_always_be_stored():
    assert invalid_line_text(b'{"a": "\x00", \xff') == '{"a": "\ufffd", \ufffd'
    assert "\x00" not in invalid_line_text({"custom_id": "\x00"})
    cyclic: dict = {}
    cyclic["self"] = cyclic
    assert invalid_line_text(cyclic) == "(a request nested too deep to store)"
