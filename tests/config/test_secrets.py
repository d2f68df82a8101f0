"""Secret references, and scrubbing secrets out of text."""

from __future__ import annotations

import uuid

import pytest

from dispatcher.config.secrets import (
    MissingSecretError,
    Secret,
    redact,
    redact_url,
    remember_secret,
)


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def test_env_reference_resolves_at_call_time(monkeypatch):
    name = _unique("LLMD_TEST_SECRET_").upper()
    monkeypatch.delenv(name, raising=False)
    secret = Secret(f"os.environ/{name}", where="model_list[0].litellm_params.api_key")
    assert secret.env_name == name
    monkeypatch.setenv(name, "value-set-later-1")
    assert secret.resolve() == "value-set-later-1"
    monkeypatch.setenv(name, "value-changed-2")
    assert secret.resolve() == "value-changed-2"


def test_missing_env_raises_naming_variable(monkeypatch):
    name = _unique("LLMD_TEST_UNSET_").upper()
    monkeypatch.delenv(name, raising=False)
    secret = Secret(f"os.environ/{name}", where="somewhere.api_key")
    with pytest.raises(MissingSecretError) as info:
        secret.resolve()
    assert info.value.name == name
    assert name in str(info.value)
    assert "somewhere.api_key" in str(info.value)


def test_empty_env_counts_as_missing(monkeypatch):
    name = _unique("LLMD_TEST_EMPTY_").upper()
    monkeypatch.setenv(name, "")
    with pytest.raises(MissingSecretError):
        Secret(f"os.environ/{name}").resolve()


def test_literal_resolves_to_itself():
    value = _unique("literal-")
    assert Secret(value).resolve() == value


def test_repr_never_shows_value(monkeypatch):
    literal = _unique("literal-secret-")
    s = Secret(literal)
    assert literal not in repr(s) and literal not in str(s)
    assert "***" in repr(s)

    name = _unique("LLMD_TEST_REPR_").upper()
    monkeypatch.setenv(name, "env-secret-value-xyz")
    ref = Secret(f"os.environ/{name}")
    ref.resolve()
    assert "env-secret-value-xyz" not in repr(ref)
    assert repr(ref) == f"Secret(os.environ/{name})"
    assert f"{ref}" == repr(ref)


def test_literal_secret_is_redacted_afterwards():
    value = _unique("plainkey")
    Secret(value)
    assert redact(f"the key {value} was rejected") == "the key *** was rejected"


def test_resolved_env_secret_is_redacted(monkeypatch):
    name = _unique("LLMD_TEST_RED_").upper()
    value = _unique("envvalue")
    monkeypatch.setenv(name, value)
    Secret(f"os.environ/{name}").resolve()
    assert value not in redact(f"echo: {value}")


def test_non_sensitive_literal_is_not_remembered():
    value = _unique("teamname")
    Secret(value, sensitive=False)
    assert redact(f"team {value}") == f"team {value}"


def test_remember_secret_ignores_very_short_values():
    remember_secret("ab")
    assert redact("ab cab") == "ab cab"


def test_redact_known_secret():
    value = _unique("known")
    remember_secret(value)
    assert redact(f"x{value}y") == "x***y"


def test_redact_bearer_token():
    out = redact("Authorization: Bearer abcdef0123456789")
    assert "abcdef0123456789" not in out
    assert "***" in out


def test_redact_sk_key():
    out = redact("Incorrect API key provided: sk-proj-AbC123xyz7890. See docs.")
    assert "sk-proj-AbC123xyz7890" not in out
    assert out.endswith(". See docs.")


@pytest.mark.parametrize(
    "text, leaked",
    [
        ("api_key=abcdef123456&x=1", "abcdef123456"),
        ('{"api_key": "qwerty987654"}', "qwerty987654"),
        ("x-api-key: zyxwvu654321", "zyxwvu654321"),
        ("API-KEY = mnbvcx112233", "mnbvcx112233"),
    ],
)
def test_redact_api_key_pairs(text, leaked):
    out = redact(text)
    assert leaked not in out
    assert "***" in out


def test_redact_leaves_ordinary_text():
    text = "rate limit reached for requests; retry in 20s"
    assert redact(text) == text


def test_redact_none_and_empty():
    assert redact(None) is None
    assert redact("") == ""


def test_redact_url_hides_password():
    assert redact_url("postgresql+psycopg://user:hunter2@db:5432/app") == (
        "postgresql+psycopg://user:***@db:5432/app"
    )


def test_redact_url_without_password_unchanged():
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert redact_url("sqlite:///./x.db") == "sqlite:///./x.db"
    assert redact_url(None) is None


def test_redact_url_password_without_user():
    assert "s3cretpw" not in redact_url("redis://:s3cretpw@localhost:6379/0")
