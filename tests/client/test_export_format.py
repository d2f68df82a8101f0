"""Export lines in OpenAI's batch output and error file shapes."""

from __future__ import annotations

import json
from types import SimpleNamespace

from dispatcher.client.export import error_line, output_line
from dispatcher.store.tables import JobStatus

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


def _row(**fields):
    base = dict(
        id=17,
        seq=0,
        custom_id="request-1",
        status=JobStatus.SUCCEEDED,
        response_status=200,
        response=json.dumps(COMPLETION, separators=(",", ":")),
        request_id="req_abc",
        error_code=None,
        error_message=None,
    )
    base.update(fields)
    return SimpleNamespace(**base)


def _parse(line: bytes) -> dict:
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1  # exactly one JSONL line
    return json.loads(line)


def test_output_line_shape():
    data = _parse(output_line(_row()))
    assert list(data) == ["id", "custom_id", "response", "error"]
    assert data == {
        "id": "batch_req_17",
        "custom_id": "request-1",
        "response": {"status_code": 200, "request_id": "req_abc", "body": COMPLETION},
        "error": None,
    }


def test_output_line_multiline_body_reserialised():
    pretty = json.dumps(COMPLETION, indent=2)
    assert "\n" in pretty
    data = _parse(output_line(_row(response=pretty)))
    assert data["response"]["body"] == COMPLETION


def test_output_line_crlf_body_reserialised():
    body = json.dumps(COMPLETION).replace(", ", ",\r\n")
    assert _parse(output_line(_row(response=body)))["response"]["body"] == COMPLETION


def test_output_line_defaults_and_nulls():
    data = _parse(output_line(_row(response_status=None, request_id=None)))
    assert data["response"]["status_code"] == 200
    assert data["response"]["request_id"] is None


def test_output_line_escapes_custom_id():
    data = _parse(output_line(_row(custom_id='we"ird\nid')))
    assert data["custom_id"] == 'we"ird\nid'


def test_error_line_with_provider_response():
    body = {"error": {"message": "Invalid value", "type": "invalid_request_error", "param": None, "code": None}}
    row = _row(status=JobStatus.FAILED, response_status=400, response=json.dumps(body, indent=1),
               request_id="req_x", error_code="invalid_request_error", error_message="Invalid value")
    data = _parse(error_line(row))
    assert list(data) == ["id", "custom_id", "response", "error"]
    assert data == {
        "id": "batch_req_17",
        "custom_id": "request-1",
        "response": {"status_code": 400, "request_id": "req_x", "body": body},
        "error": None,
    }


def test_error_line_non_json_body_becomes_string():
    row = _row(status=JobStatus.FAILED, response_status=502, response="<html>\nBad Gateway\n</html>",
               error_code="server_error", error_message="bad gateway")
    data = _parse(error_line(row))
    assert data["response"]["status_code"] == 502
    assert data["response"]["body"] == "<html>\nBad Gateway\n</html>"


def test_error_line_without_response():
    row = _row(status=JobStatus.FAILED, response_status=None, response=None, request_id=None,
               error_code="timeout", error_message="no response within 60s")
    data = _parse(error_line(row))
    assert data == {
        "id": "batch_req_17",
        "custom_id": "request-1",
        "response": None,
        "error": {"code": "timeout", "message": "no response within 60s"},
    }


def test_error_line_failed_without_code_or_message():
    row = _row(status=JobStatus.FAILED, response_status=None, response=None)
    assert _parse(error_line(row))["error"] == {"code": "failed", "message": "failed"}


def test_expired_row():
    message = "This request could not be executed before the completion window expired."
    row = _row(status=JobStatus.EXPIRED, response_status=None, response=None, request_id=None,
               error_code="batch_expired", error_message=message)
    data = _parse(error_line(row))
    assert data["response"] is None
    assert data["error"] == {"code": "batch_expired", "message": message}


def test_expired_row_code_even_with_other_error_code():
    row = _row(status=JobStatus.EXPIRED, response_status=None, response=None,
               error_code="rate_limit_exceeded", error_message="later")
    assert _parse(error_line(row))["error"]["code"] == "batch_expired"


def test_cancelled_row():
    row = _row(status=JobStatus.CANCELLED, response_status=None, response=None, request_id=None,
               error_code=None, error_message="The batch was cancelled before this request started.")
    data = _parse(error_line(row))
    assert data["response"] is None
    assert data["error"]["code"] == "batch_cancelled"
    assert data["error"]["message"] == "The batch was cancelled before this request started."


def test_cancelled_row_keeps_specific_code():
    row = _row(status=JobStatus.CANCELLED, response_status=None, response=None,
               error_code="budget_exceeded", error_message="max_cost reached")
    assert _parse(error_line(row))["error"]["code"] == "budget_exceeded"
