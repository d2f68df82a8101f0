"""/v1/files with the openai SDK: upload, retrieve, download, list with pagination, delete, and
every way an upload is refused."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.api.conftest import TEST_MAX_BODY_BYTES, batch_lines, jsonl, upload

pytestmark = pytest.mark.slow


def test_upload_retrieve_download_and_delete(embedded_api):
    sdk = embedded_api.sdk()
    content = jsonl(batch_lines(3, prefix="files"))
    before = time.time()
    uploaded = sdk.files.create(file=("prompts.jsonl", content, "application/jsonl"), purpose="batch")
    assert uploaded.id.startswith("file-") and uploaded.object == "file"
    assert (uploaded.bytes, uploaded.filename, uploaded.purpose, uploaded.status) == (
        len(content), "prompts.jsonl", "batch", "processed")
    assert before - 1 <= uploaded.created_at <= time.time() + 1
    # Batch input files expire after 30 days unless told otherwise, as OpenAI's do.
    assert uploaded.expires_at == pytest.approx(uploaded.created_at + 30 * 86400, abs=2)

    assert sdk.files.retrieve(uploaded.id) == uploaded
    assert sdk.files.content(uploaded.id).content == content

    deleted = sdk.files.delete(uploaded.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (uploaded.id, True, "file")
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        sdk.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        sdk.files.delete(uploaded.id)


def test_expires_after_is_honoured(embedded_api):
    sdk = embedded_api.sdk()
    uploaded = sdk.files.create(
        file=("short.jsonl", jsonl(batch_lines(1)), "application/jsonl"), purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert uploaded.expires_at == pytest.approx(uploaded.created_at + 3600, abs=2)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.files.create(file=("x.jsonl", jsonl(batch_lines(1)), "application/jsonl"), purpose="batch",
                         expires_after={"anchor": "created_at", "seconds": 60})
    assert refused.value.param == "expires_after.seconds"


def test_list_pages_through_every_file(embedded_api):
    """A key of its own, so the list holds exactly the files made here."""
    sdk = embedded_api.sdk(embedded_api.make_key("lister"))
    made = [upload(sdk, batch_lines(1, prefix=f"list{i}"), f"f{i}.jsonl").id for i in range(5)]

    first = sdk.files.list(limit=2)
    assert [f.id for f in first.data] == made[::-1][:2]  # newest first
    assert first.has_more is True
    assert [f.id for f in sdk.files.list(limit=2)] == made[::-1]  # the SDK walks every page
    assert [f.id for f in sdk.files.list(limit=2, order="asc")] == made
    last = sdk.files.list(limit=2, after=made[1], order="asc")
    assert [f.id for f in last.data] == made[2:4] and last.has_more is True
    assert [f.id for f in sdk.files.list(purpose="batch")] == made[::-1]
    assert sdk.files.list(purpose="fine-tune").data == []
    with pytest.raises(openai.BadRequestError):
        sdk.files.list(limit=0)


def test_a_purpose_other_than_batch_is_refused(embedded_api):
    sdk = embedded_api.sdk()
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.files.create(file=("a.jsonl", jsonl(batch_lines(1)), "application/jsonl"), purpose="fine-tune")
    assert refused.value.param == "purpose"
    assert "batch" in refused.value.message


@pytest.mark.parametrize("content", [
    b"custom_id,prompt\n1,hello\n",
    b'[{"custom_id": "1"}]\n',
    b"PK\x03\x04 not really a zip",
    b"\n\n  \n",
], ids=["csv", "json-array", "zip", "blank"])
def test_a_file_that_is_not_jsonl_is_unprocessable(embedded_api, content):
    sdk = embedded_api.sdk()
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        sdk.files.create(file=("data.jsonl", content, "application/jsonl"), purpose="batch")
    assert refused.value.param == "file"
    assert refused.value.body["type"] == "unprocessable_entity_error"


def test_an_oversized_upload_is_refused_with_413(embedded_api):
    sdk = embedded_api.sdk()
    before = [f.id for f in sdk.files.list()]
    too_big = jsonl(batch_lines(1)) * (TEST_MAX_BODY_BYTES // 100)
    assert len(too_big) > TEST_MAX_BODY_BYTES
    with pytest.raises(openai.APIStatusError) as refused:
        sdk.files.create(file=("big.jsonl", too_big, "application/jsonl"), purpose="batch")
    assert refused.value.status_code == 413
    assert "max_body_bytes" in refused.value.message
    assert [f.id for f in sdk.files.list()] == before  # nothing stored


def test_an_oversized_chunked_upload_is_cut_off_with_413(embedded_api):
    """No Content-Length: the body is counted as it arrives."""
    def body():
        yield b'--abc\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
        for _ in range(TEST_MAX_BODY_BYTES // 1024 + 1):
            yield b'{"custom_id": "x"}'.ljust(1023) + b"\n"

    answer = httpx.post(
        f"{embedded_api.server.base_url}/files", content=body(),
        headers={"authorization": f"Bearer {embedded_api.admin_key}",
                 "content-type": "multipart/form-data; boundary=abc"},
        timeout=30,
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "request_too_large"


@pytest.mark.parametrize("body, content_type, code", [
    (b"--abc\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--abc--\r\n",
     "multipart/form-data; boundary=abc", "missing_file"),
    (b"this is not multipart", "multipart/form-data; boundary=abc", None),
    (b'{"purpose": "batch"}', "application/json", "invalid_content_type"),
], ids=["no-file-field", "malformed", "json"])
def test_a_malformed_upload_is_a_bad_request(embedded_api, body, content_type, code):
    answer = httpx.post(
        f"{embedded_api.server.base_url}/files", content=body,
        headers={"authorization": f"Bearer {embedded_api.admin_key}", "content-type": content_type},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if code:
        assert error["code"] == code


def test_a_dropped_upload_leaves_nothing_behind(embedded_api):
    import socket

    sdk = embedded_api.sdk(embedded_api.make_key("dropper"))
    head = (
        b'--abc\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--abc\r\nContent-Disposition: form-data; name="file"; filename="cut.jsonl"\r\n\r\n'
    )
    declared = len(head) + 200_000
    with socket.create_connection(("127.0.0.1", embedded_api.server.port)) as connection:
        connection.sendall(
            b"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {sdk.api_key}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=abc\r\n"
            + f"Content-Length: {declared}\r\n\r\n".encode()
            + head + b'{"custom_id": "1"}\n' * 4000
        )
        time.sleep(0.3)
    time.sleep(0.3)
    assert sdk.files.list().data == []
    assert upload(sdk, batch_lines(1, prefix="after-drop")).status == "processed"  # the server is fine
