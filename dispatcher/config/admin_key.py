"""The HTTP API's admin key: ``dispatcher_settings.api.admin_key``, or LiteLLM's
``general_settings.master_key``.

A LiteLLM proxy config names the key that may do everything ``general_settings.master_key``;
served by ``llm-dispatch serve``, the same file is opened by the same key. When both are
written they must say the same thing: two different admin keys would leave a guess as to which
one opens the API. Either is kept as written (``os.environ/NAME`` or a literal) and becomes a
``Secret``: read from the environment when the server starts, never shown.
"""

from __future__ import annotations

from typing import Any

from dispatcher.config.secrets import ENV_PREFIX, Secret

ADMIN_KEY = "dispatcher_settings.api.admin_key"
MASTER_KEY = "general_settings.master_key"


def check_admin_key(value: Any, where: str) -> None:
    """Raise ValueError (naming ``where``) unless ``value`` can be an admin key."""
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be text: os.environ/NAME or the key itself")
    if not value.strip():
        raise ValueError(f"{where} is empty; give os.environ/NAME or leave it out")
    Secret(value, where)  # refuses 'os.environ/' without a name


def master_key(general_settings: dict[str, Any] | None) -> str | None:
    """LiteLLM's master key as written (checked), or None when the file has none."""
    value = (general_settings or {}).get("master_key")
    if value is None:
        return None
    check_admin_key(value, MASTER_KEY)
    return value


def admin_key_secret(admin_key: str | None, general_settings: dict[str, Any] | None) -> Secret | None:
    """The admin key, unresolved and labelled with the key path it was written at (None: the
    API has no admin key). Raises ValueError when both keys are written and differ."""
    litellm_key = master_key(general_settings)
    if admin_key is not None and litellm_key is not None and _written(admin_key) != _written(litellm_key):
        raise ValueError(
            f"{ADMIN_KEY} and {MASTER_KEY} are both set and differ; the API has one admin key: "
            f"keep one of them (or make them the same)"
        )
    if admin_key is not None:
        return Secret(admin_key, ADMIN_KEY)
    if litellm_key is not None:
        return Secret(litellm_key, MASTER_KEY)
    return None


def _written(value: str) -> str:
    """A key as written, spaces after ``os.environ/`` ignored (as ``Secret`` reads it)."""
    if value.startswith(ENV_PREFIX):
        return ENV_PREFIX + value[len(ENV_PREFIX):].strip()
    return value
