"""OpenAI chat bodies translated to Anthropic Messages bodies.

The expected bodies follow the examples of Anthropic's Messages API documentation (system
prompt, multi-turn, tool use with tool_result, base64 images, tool_choice variants).
"""

from __future__ import annotations

import pytest

from dispatcher.providers.anthropic.messages import UnsupportedRequest
from dispatcher.providers.anthropic.request import (
    JSON_TOOL_NAME,
    messages_body,
    request_problem,
    uses_json_tool,
)

MODEL = "claude-sonnet-4-5-20250929"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}},
            "required": ["location"],
        },
    },
}
ANTHROPIC_WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": WEATHER_TOOL["function"]["parameters"],
}


def _translate(default_max_tokens: int = 1024, **body) -> dict:
    return messages_body({"model": MODEL, **body}, default_max_tokens)


def _user(text: str = "Hello, Claude") -> dict:
    return {"role": "user", "content": text}


def test_plain_chat_with_max_tokens():
    assert _translate(messages=[_user()], max_tokens=1024) == {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello, Claude"}],
    }


@pytest.mark.parametrize("given, sent", [
    ({}, 512),  # the default passed in (the deployment's / dispatcher's default_max_tokens)
    ({"max_tokens": 20}, 20),
    ({"max_completion_tokens": 30}, 30),
    ({"max_completion_tokens": 30, "max_tokens": 20}, 30),
])
def test_max_tokens_is_always_sent(given, sent):
    assert _translate(512, messages=[_user()], **given)["max_tokens"] == sent


def test_system_and_developer_messages_become_system():
    body = _translate(messages=[
        {"role": "system", "content": "You are a seasoned data scientist at a Fortune 500 company."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        _user("Analyze this dataset for anomalies."),
    ])
    assert body["system"] == "You are a seasoned data scientist at a Fortune 500 company.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": "Analyze this dataset for anomalies."}]


def test_system_with_cache_control_stays_a_block_list():
    block = {"type": "text", "text": "<the entire contents of Pride and Prejudice>",
             "cache_control": {"type": "ephemeral"}}
    body = _translate(messages=[{"role": "system", "content": [block]}, _user("Summarize it.")])
    assert body["system"] == [block]


def test_multi_turn_conversation_keeps_its_turns():
    turns = [_user("Hello there."), {"role": "assistant", "content": "Hi, I'm Claude. How can I help you?"},
             _user("Can you explain LLMs in plain English?")]
    assert _translate(messages=turns)["messages"] == turns


def test_consecutive_messages_of_one_role_are_merged():
    body = _translate(messages=[
        _user("First question."), _user("Second question."),
        {"role": "assistant", "content": "One"}, {"role": "assistant", "content": "Two"},
        _user("Thanks"),
    ])
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "First question."},
                                     {"type": "text", "text": "Second question."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "One"}, {"type": "text", "text": "Two"}]},
        {"role": "user", "content": "Thanks"},
    ]


def test_stop_temperature_top_p_and_user():
    body = _translate(messages=[_user()], stop=["\n\nHuman:", "END"], temperature=0.5, top_p=0.9, user="user-42")
    assert body["stop_sequences"] == ["\n\nHuman:", "END"]
    assert body["temperature"] == 0.5 and body["top_p"] == 0.9
    assert body["metadata"] == {"user_id": "user-42"}
    assert _translate(messages=[_user()], stop="END")["stop_sequences"] == ["END"]


def test_tools_and_auto_choice():
    body = _translate(messages=[_user("What is the weather like in San Francisco?")],
                      tools=[WEATHER_TOOL], tool_choice="auto")
    assert body["tools"] == [ANTHROPIC_WEATHER_TOOL]
    assert body["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize("choice, parallel, sent", [
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
    (None, None, None),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
    ("auto", True, {"type": "auto"}),
])
def test_tool_choice_variants(choice, parallel, sent):
    extra = {k: v for k, v in (("tool_choice", choice), ("parallel_tool_calls", parallel)) if v is not None}
    body = _translate(messages=[_user()], tools=[WEATHER_TOOL], **extra)
    assert body.get("tool_choice") == sent


def test_tool_without_parameters_gets_an_empty_object_schema():
    body = _translate(messages=[_user()], tools=[{"type": "function", "function": {"name": "now", "strict": True}}])
    assert body["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


def test_tool_calls_and_tool_results_become_tool_use_and_tool_result_blocks():
    body = _translate(tools=[WEATHER_TOOL], messages=[
        _user("What's the weather like in San Francisco and New York?"),
        {"role": "assistant", "content": "I'll check both.", "tool_calls": [
            {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location": "San Francisco, CA"}'}},
            {"id": "toolu_02B", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location": "New York, NY"}'}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
        {"role": "tool", "tool_call_id": "toolu_02B", "content": [{"type": "text", "text": "22 degrees"}]},
    ])
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "text", "text": "I'll check both."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"location": "San Francisco, CA"}},
            {"type": "tool_use", "id": "toolu_02B", "name": "get_weather", "input": {"location": "New York, NY"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
            {"type": "tool_result", "tool_use_id": "toolu_02B", "content": [{"type": "text", "text": "22 degrees"}]},
        ]},
    ]


def test_images_as_base64_and_url_sources():
    body = _translate(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
        {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/ant.jpg", "detail": "high"}},
        {"type": "text", "text": "Describe these images."},
    ]}])
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
        {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/ant.jpg"}},
        {"type": "text", "text": "Describe these images."},
    ]


def test_pdf_file_becomes_a_document_block():
    body = _translate(messages=[{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
    ]}])
    assert body["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
    ]


def test_json_schema_response_format_becomes_a_forced_tool():
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    body = _translate(messages=[_user("Extract the name.")], response_format={
        "type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}})
    assert body["tools"] == [{"name": JSON_TOOL_NAME, "description": body["tools"][0]["description"],
                              "input_schema": schema}]
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL_NAME}
    assert uses_json_tool(body)
    assert not uses_json_tool(_translate(messages=[_user()], tools=[WEATHER_TOOL], tool_choice="required"))


def test_json_object_and_text_response_formats():
    body = _translate(messages=[_user()], response_format={"type": "json_object"})
    assert body["tools"][0]["input_schema"] == {"type": "object"}
    assert "tools" not in _translate(messages=[_user()], response_format={"type": "text"})


def test_no_op_fields_are_dropped_and_anthropic_fields_pass():
    body = _translate(messages=[_user()], n=1, stream=False, frequency_penalty=0, presence_penalty=0.0,
                      logprobs=False, top_k=40, thinking={"type": "enabled", "budget_tokens": 2048},
                      metadata={"tags": ["batch-7"]}, service_tier="auto", seed=None)
    assert body == {"model": MODEL, "max_tokens": 1024, "messages": [_user()], "top_k": 40,
                    "thinking": {"type": "enabled", "budget_tokens": 2048}, "service_tier": "auto"}


def test_the_request_body_is_not_changed():
    original = {"model": MODEL, "messages": [_user("a"), _user("b"), {"role": "user", "content": [
        {"type": "text", "text": "c"}]}], "tools": [WEATHER_TOOL]}
    snapshot = repr(original)
    messages_body(original, 100)
    assert repr(original) == snapshot


@pytest.mark.parametrize("body, param, words", [
    ({"n": 2}, "n", "one choice"),
    ({"seed": 7}, "seed", "seeded"),
    ({"logit_bias": {"50256": -100}}, "logit_bias", "biasing"),
    ({"frequency_penalty": 0.5}, "frequency_penalty", "repetition"),
    ({"logprobs": True}, "logprobs", "log probabilities"),
    ({"reasoning_effort": "high"}, "reasoning_effort", "thinking"),
    ({"temperature": 1.5}, "temperature", "range 0 to 1"),
    ({"stop": ["\n"]}, "stop", "whitespace"),
    ({"service_tier": "flex"}, "service_tier", "standard_only"),
    ({"some_new_field": 1}, "some_new_field", "no such parameter"),
    ({"tool_choice": "required"}, "tool_choice", "no tools"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]", "function tools"),
    ({"response_format": {"type": "json_object"}, "tools": [WEATHER_TOOL]}, "response_format", "tools"),
    ({"response_format": {"type": "json_object"}, "thinking": {"type": "enabled", "budget_tokens": 1024}},
     "response_format", "thinking"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "array"}}}},
     "response_format.json_schema.schema", "object"),
])
def test_fields_anthropic_cannot_take_are_named(body, param, words):
    with pytest.raises(UnsupportedRequest) as info:
        _translate(messages=[_user()], **body)
    assert info.value.param == param
    assert words in str(info.value)


@pytest.mark.parametrize("messages, param, words", [
    ([{"role": "system", "content": "only a system prompt"}], "messages", "user message"),
    ([{"role": "assistant", "content": "I start"}, _user()], "messages", "first message"),
    ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role", "'function'"),
    ([_user("")], "messages[0].content", "empty"),
    ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}], "messages[0].content[0]",
     "input_audio"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}],
     "messages[0].content[0].image_url", "image/bmp"),
    ([_user(), {"role": "assistant", "content": None}], "messages[1]", "content or tool_calls"),
    ([_user(), {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                      "function": {"name": "f", "arguments": "{oops"}}]}],
     "messages[1].tool_calls[0].function.arguments", "not JSON"),
    ([_user(), {"role": "tool", "content": "42"}], "messages[1].tool_call_id", "tool_call_id"),
])
def test_messages_anthropic_cannot_take_are_named(messages, param, words):
    with pytest.raises(UnsupportedRequest) as info:
        _translate(messages=messages)
    assert info.value.param == param
    assert words in str(info.value)


def test_request_problem_for_submit_time():
    assert request_problem({"messages": [_user()], "max_tokens": 10}) is None
    problem = request_problem({"messages": [_user()], "logit_bias": {"1": 2}})
    assert problem.startswith("body.logit_bias: ") and "Anthropic" in problem
