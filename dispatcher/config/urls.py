"""Checks for the URLs a config names: provider endpoints, Redis, the database.

Each check returns the usable URL or raises ValueError with a message that says what is wrong
and what a good value looks like; callers add the key path (or the environment variable).
Values are shown shortened and with any password masked: a URL may carry credentials, and a
broken value may be huge (an ``os.environ/`` variable holding a whole file).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import httpx

from dispatcher.config.secrets import ENV_PREFIX, redact_url

MAX_URL_LENGTH = 2048
_SHOWN_CHARS = 80


def shown(value: str) -> str:
    """A URL as error messages may show it: password masked, at most 80 characters."""
    text = redact_url(value) or ""
    if "@" in text and "://" not in text:
        return "(value hidden: it may hold a password)"
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + f"... ({len(text):,} characters)"
    return repr(text)


def from_environment(value: str) -> str:
    """``os.environ/NAME`` (LiteLLM's form) read now; any other value as it is."""
    if not value.startswith(ENV_PREFIX):
        return value
    name = value[len(ENV_PREFIX):].strip()
    if not name:
        raise ValueError("'os.environ/' needs a variable name, like os.environ/REDIS_URL")
    resolved = os.environ.get(name)
    if not resolved:
        raise ValueError(f"environment variable {name} is not set (or empty)")
    return resolved


def _check_plain(url: str, example: str) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"{shown(url)} is not a URL: longer than {MAX_URL_LENGTH} characters")
    if url != url.strip() or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValueError(f"{shown(url)} is not a URL: it contains spaces or control characters")
    if "://" not in url:
        raise ValueError(f"{shown(url)} is not a URL; write it like {example}")


def http_base_url(url: str) -> str:
    """A provider ``api_base``: http(s), a host, a sane length, parseable by httpx."""
    _check_plain(url, "https://api.example.com/v1")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{shown(url)}: the scheme must be http or https, not '{parts.scheme}'")
    try:
        host, _port = parts.hostname, parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise ValueError(f"{shown(url)} is not a valid URL: {exc}") from None
    if not host:
        raise ValueError(f"{shown(url)} has no host; write it like https://api.example.com/v1")
    return url


def redis_url(url: str) -> str:
    """``redis://``, ``rediss://`` or ``unix://`` with a host (or a socket path)."""
    _check_plain(url, "redis://127.0.0.1:6379/0")
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"{shown(url)}: a Redis URL starts with redis://, rediss:// or unix://; "
            "write it like redis://127.0.0.1:6379/0"
        )
    try:
        host, _port = parts.hostname, parts.port
    except ValueError as exc:
        raise ValueError(f"{shown(url)} is not a valid URL: {exc}") from None
    if parts.scheme == "unix" and not parts.path:
        raise ValueError(f"{shown(url)} names no socket path; write it like unix:///run/redis.sock")
    if parts.scheme != "unix" and not host:
        raise ValueError(f"{shown(url)} has no host; write it like redis://127.0.0.1:6379/0")
    return url


# What dispatcher.store.database can open (postgres:// and postgresql:// get psycopg 3).
_DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgres", "postgresql", "postgresql+psycopg")


def database_url(url: str) -> str:
    """SQLite or PostgreSQL, the two databases the store supports."""
    _check_plain(url, "sqlite:///./llm-dispatch.db or postgresql+psycopg://user@host/db")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _DATABASE_SCHEMES:
        raise ValueError(
            f"{shown(url)}: '{scheme}' is not supported; use "
            "sqlite:///path/to/file.db or postgresql+psycopg://user:password@host:5432/db"
        )
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"{shown(url)} is not a valid database URL: {exc}") from None
    return url
