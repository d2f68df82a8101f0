"""What fuzzing ``serve`` from its OpenAPI schema found (tests/api/test_fuzz.py), each with the
input that found it: the answer must be an OpenAI-shaped 4xx, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import batch_lines, upload

pytestmark = pytest.mark.slow

CHAT_BATCH = '"endpoint": "/v1/chat/completions", "completion_window": "24h"'


@pytest.fixture(scope="module")
def team(embedded_api):
    """A team's key and an input file of its own; its batch list shows only what it made."""
    key = embedded_api.make_key("findings")
    return key, upload(embedded_api.sdk(key), batch_lines(2, prefix="finding")).id


def _post_raw(api, key: str, path: str, body: str) -> httpx.Response:
    """A body sent as written: Python's json module accepts NaN and Infinity, the SDK never sends them."""
    return httpx.post(f"{api.server.root_url}{path}", content=body, timeout=30,
                      headers={"Authorization": f"Bearer {key}", "content-type": "application/json"})


@pytest.mark.parametrize("value", ["Infinity", "NaN", "1e400", "-Infinity"])
def test_a_not_before_that_is_not_a_finite_number_is_a_400(embedded_api, team, value):
    # Before: Infinity stored a batch whose Batch object could not be written (500, and every later
    # GET /v1/batches of its owner 500 too); NaN failed the jobs' NOT NULL not_before (500).
    key, file_id = team
    answer = _post_raw(embedded_api, key, "/v1/batches",
                       f'{{"input_file_id": "{file_id}", {CHAT_BATCH}, "not_before": {value}}}')
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "message": "the body is not valid JSON: not_before is not a finite number (NaN, Infinity and numbers "
                   "beyond a double's range are not JSON numbers)",
        "type": "invalid_request_error", "param": "not_before", "code": "invalid_json",
    }
    assert embedded_api.sdk(key).batches.list().data == []  # nothing stored, the list still answers


def test_a_non_finite_number_deep_in_a_chat_body_is_named(embedded_api, team):
    # Before: accepted, stored, and sent on to the provider as `NaN`, which is not JSON.
    key, _file_id = team
    answer = _post_raw(embedded_api, key, "/v1/chat/completions",
                       '{"model": "chat", "messages": [{"role": "user", "content": "hi"}], '
                       '"tools": [{"type": "function", "function": {"name": "f", "strict": 1e999}}]}')
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "tools.0.function.strict"
    assert answer.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("text", ["inf", "nan", "1e400"])
def test_a_not_before_text_that_is_not_a_time_is_a_400(embedded_api, text):
    # Found by hand beside the fuzzing: the same 500s as above, with the number written as text.
    key = embedded_api.make_key("not-before-text")
    file_id = upload(embedded_api.sdk(key), batch_lines(1, prefix=text)).id
    answer = _post_raw(embedded_api, key, "/v1/batches",
                       f'{{"input_file_id": "{file_id}", {CHAT_BATCH}, "not_before": "{text}"}}')
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert embedded_api.sdk(key).batches.list().data == []


def test_a_priority_of_true_is_not_read_as_1(embedded_api):
    # JSON true is not a priority (pydantic's lax int would have taken it as 1, "high").
    key = embedded_api.make_key("boolean-priority")
    answer = _post_raw(embedded_api, key, "/v1/chat/completions",
                       '{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "priority": true}')
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "priority"
    file_id = upload(embedded_api.sdk(key), batch_lines(1, prefix="bool")).id
    answer = _post_raw(embedded_api, key, "/v1/batches", f'{{"input_file_id": "{file_id}", {CHAT_BATCH}, "priority": true}}')
    assert answer.status_code == 400, answer.text
