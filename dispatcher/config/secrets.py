"""API keys and other secrets: referenced in config, resolved at call time, never shown.

``api_key: os.environ/NAME`` is kept as a reference and read from the environment only when a
call is made, so a missing variable fails the jobs that need it instead of the whole worker.
``redact`` scrubs secrets from any text that could reach the database, logs or results.
"""

from __future__ import annotations

import os
import re
import threading

ENV_PREFIX = "os.environ/"

# Known secret values seen by this process, so that error text quoting them can be scrubbed.
_known_secrets: set[str] = set()
_known_lock = threading.Lock()

# Things that look like credentials even when we never saw the value (a provider echoing a
# different key, an Authorization header in an exception message).
_CREDENTIAL_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"), r"\1***"),
    (re.compile(r"(?i)((?:api[_-]?key|x-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}"), r"\1***"),
    (re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_-]{8,}"), "***"),
]


class MissingSecretError(Exception):
    """An ``os.environ/NAME`` reference whose variable is not set."""

    def __init__(self, name: str, where: str):
        super().__init__(
            f"environment variable {name} is not set (needed by {where}); "
            f"export it in the worker's environment"
        )
        self.name = name


class Secret:
    """A secret from config: a literal value or an ``os.environ/NAME`` reference.

    Its repr and str never show the value, so it is safe inside config dumps and logs.
    """

    __slots__ = ("_literal", "env_name", "where", "sensitive")

    def __init__(self, raw: str, where: str = "config", sensitive: bool = True):
        self.where = where
        self.sensitive = sensitive
        if raw.startswith(ENV_PREFIX):
            self.env_name: str | None = raw[len(ENV_PREFIX):].strip()
            self._literal: str | None = None
            if not self.env_name:
                raise ValueError(f"{where}: 'os.environ/' needs a variable name, like os.environ/OPENAI_API_KEY")
        else:
            self.env_name = None
            self._literal = raw
            if sensitive:
                remember_secret(raw)

    def resolve(self) -> str:
        """The secret's value now; raises MissingSecretError when the variable is unset."""
        if self._literal is not None:
            return self._literal
        value = os.environ.get(self.env_name or "")
        if not value:
            raise MissingSecretError(self.env_name or "", self.where)
        if self.sensitive:
            remember_secret(value)
        return value

    def __repr__(self) -> str:
        return f"Secret({ENV_PREFIX}{self.env_name})" if self.env_name else "Secret('***')"

    __str__ = __repr__


def remember_secret(value: str) -> None:
    """Record a secret value so ``redact`` removes it wherever it appears."""
    if value and len(value) >= 4:
        with _known_lock:
            _known_secrets.add(value)


def redact(text: str | None) -> str | None:
    """Text with every known secret and anything credential-shaped replaced by ``***``."""
    if not text:
        return text
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, "***")
    for pattern, replacement in _CREDENTIAL_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# (number of known secrets it was built for, one pattern matching all of them)
_body_scrubber: tuple[int, re.Pattern[bytes] | None] = (0, None)


def scrub_secrets(data: bytes) -> bytes:
    """A provider's raw answer (JSON) with every known secret value replaced by ``***``.

    Only exact values, not credential-shaped text: a model's answer may rightly contain
    something that looks like a key. A secret is looked for as it is and as JSON escapes it,
    all at once by one compiled pattern; when none occurs (the usual case) ``data`` itself is
    returned, uncopied.
    """
    count, pattern = _body_scrubber
    if count != len(_known_secrets):  # the set only grows: its size says when to rebuild
        count, pattern = _build_body_scrubber()
    return pattern.sub(_mask_unless_escaped, data) if pattern is not None else data


def _build_body_scrubber() -> tuple[int, re.Pattern[bytes] | None]:
    global _body_scrubber
    import json

    with _known_lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)  # longest first in the pattern
    forms: dict[bytes, None] = {}
    for secret in secrets:
        for escaped in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
            forms[escaped.encode()] = None
            forms[escaped.replace("/", "\\/").encode()] = None
    pattern = re.compile(b"|".join(re.escape(form) for form in forms)) if forms else None
    _body_scrubber = (len(secrets), pattern)
    return _body_scrubber


def _mask_unless_escaped(match: re.Match[bytes]) -> bytes:
    # After an odd run of backslashes the match begins inside a JSON escape (``\n`` + rest):
    # the text there is not the secret, and masking it would break the JSON.
    data, start = match.string, match.start()
    backslashes = 0
    while start - backslashes > 0 and data[start - backslashes - 1] == 0x5C:
        backslashes += 1
    return match.group(0) if backslashes % 2 else b"***"


def redact_url(url: str | None) -> str | None:
    """A connection URL with its password hidden, for error messages.

    The credentials end at the *last* '@' before the host (a password may contain '@'),
    and the user name may be empty (``redis://:password@host``).
    """
    if not url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    authority_end = len(rest)
    for separator in "/?#":
        index = rest.find(separator)
        if index != -1:
            authority_end = min(authority_end, index)
    at = rest.rfind("@", 0, authority_end)
    if at == -1:
        return url
    credentials = rest[:at]
    user = credentials.split(":", 1)[0]
    masked = f"{user}:***" if ":" in credentials else user
    return f"{scheme}://{masked}{rest[at:]}"
