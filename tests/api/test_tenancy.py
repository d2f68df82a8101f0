"""Keys and tenancy over HTTP: 401 without a valid key, two teams that cannot see each other's
work (404, as if it did not exist), and limits that refuse with 403 before anything is stored."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.api.conftest import batch_lines, read_lines, upload, wait_for_batch

pytestmark = pytest.mark.slow


def test_no_key_a_wrong_key_or_a_revoked_key_is_401(embedded_api):
    bare = httpx.get(f"{embedded_api.server.base_url}/files", timeout=10)
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "missing_api_key"
    with pytest.raises(openai.AuthenticationError) as wrong:
        embedded_api.sdk("llmd-not-a-key").files.list()
    assert wrong.value.code == "invalid_api_key"
    library = embedded_api.library()
    key, secret = library.create_key("revoked-team")
    assert [m.id for m in embedded_api.sdk(secret).models.list()]
    library.revoke_key(key.id)
    # Keys found are remembered for a few seconds: a revoked key stops working within that time.
    deadline = time.monotonic() + 15
    while True:
        try:
            embedded_api.sdk(secret).models.list()
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "the revoked key still opens the API"
        time.sleep(0.5)


def test_health_and_ready_need_no_key(embedded_api):
    assert httpx.get(f"{embedded_api.server.root_url}/health", timeout=10).json() == {"status": "ok"}
    assert httpx.get(f"{embedded_api.server.root_url}/ready", timeout=10).json() == {"status": "ready"}


def test_two_keys_cannot_see_each_others_work(embedded_api):
    team_a = embedded_api.sdk(embedded_api.make_key("a"))
    team_b = embedded_api.sdk(embedded_api.make_key("b"))
    lines = batch_lines(3, prefix="tenant")
    lines[2]["body"]["messages"][0]["content"] += " [[mock:status=400]]"
    source = upload(team_a, lines)
    batch = wait_for_batch(team_a, team_a.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h").id)
    assert batch.output_file_id and batch.error_file_id

    for call in (
        lambda: team_b.files.retrieve(source.id),
        lambda: team_b.files.content(source.id),
        lambda: team_b.files.delete(source.id),
        lambda: team_b.files.retrieve(batch.output_file_id),
        lambda: team_b.files.content(batch.output_file_id),
        lambda: team_b.files.content(batch.error_file_id),
        lambda: team_b.batches.retrieve(batch.id),
        lambda: team_b.batches.cancel(batch.id),
        lambda: team_b.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions",
                                      completion_window="24h"),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert team_b.files.list().data == [] and team_b.batches.list().data == []
    with pytest.raises(openai.BadRequestError):  # a cursor of another team is no cursor
        team_b.batches.list(after=batch.id)

    assert [f.id for f in team_a.files.list()] == [source.id]
    assert [b.id for b in team_a.batches.list()] == [batch.id]
    assert len(read_lines(team_a, batch.output_file_id)) == 2
    admin = embedded_api.sdk()  # sees everyone's
    assert admin.batches.retrieve(batch.id).id == batch.id
    assert source.id in [f.id for f in admin.files.list()]
    assert len(read_lines(admin, batch.error_file_id)) == 1


def test_a_key_asking_more_than_it_may_gets_403_and_nothing_is_stored(embedded_api):
    key = embedded_api.sdk(embedded_api.make_key("limited", models=["chat"], max_priority="high"))
    source = upload(key, batch_lines(2, prefix="limited"))
    create = dict(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    messages = [{"role": "user", "content": "hi"}]

    refusals = {
        "batch priority": lambda: key.batches.create(**create, extra_body={"priority": "urgent"}),
        "batch model": lambda: key.batches.create(**create, extra_body={"model": "other"}),
        "line model": lambda: key.batches.create(
            **{**create, "input_file_id": upload(key, batch_lines(2, prefix="lm", model="other")).id}),
        "line priority": lambda: key.batches.create(
            **{**create, "input_file_id": upload(key, [{**line, "priority": 0} for line in
                                                     batch_lines(2, prefix="lp")]).id}),
        "chat model": lambda: key.chat.completions.create(model="other", messages=messages),
        "chat priority": lambda: key.chat.completions.create(model="chat", messages=messages,
                                                             extra_headers={"X-Priority": "0"}),
    }
    for what, call in refusals.items():
        with pytest.raises(openai.PermissionDeniedError) as refused:
            call()
        assert refused.value.message, what
    assert key.batches.list().data == []  # nothing stored for any of them
    assert [m.id for m in key.models.list()] == ["chat"]
    with pytest.raises(openai.NotFoundError):
        key.models.retrieve("other")

    allowed = key.batches.create(**create, extra_body={"priority": "high"})
    assert allowed.model_extra["priority"] == 2
    default = key.batches.create(**create)
    assert default.model_extra["priority"] == 5
    completion = key.chat.completions.create(model="chat", messages=messages)
    assert completion.choices[0].message.content == "Mock reply to: hi"


def test_a_key_cost_ceiling_caps_its_batches(embedded_api):
    key = embedded_api.sdk(embedded_api.make_key("capped", max_cost=5.0))
    source = upload(key, batch_lines(1, prefix="capped"))
    create = dict(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert key.batches.create(**create).model_extra["max_cost_usd"] == 5.0
    assert key.batches.create(**create, extra_body={"max_cost": 2.0}).model_extra["max_cost_usd"] == 2.0
    assert key.batches.create(**create, extra_body={"max_cost": 50.0}).model_extra["max_cost_usd"] == 5.0
