"""What a LiteLLM proxy config says that applies here, taken before validation.

A LiteLLM proxy file holds much that a batch dispatcher has no use for (the proxy's auth,
database, callbacks, guardrails, MCP servers...). Those sections load and are named in one
warning each; only a top-level key that looks like a misspelling of a section we read is an
error. What does carry over:

* ``environment_variables`` are set for this process (the real environment wins), as the
  proxy does, so ``os.environ/NAME`` references to them resolve;
* ``litellm_settings`` ``num_retries``, ``request_timeout`` and the fallback lists apply unless
  ``router_settings`` sets them (LiteLLM's Router reads them the same way);
* ``rpm``/``tpm`` written beside ``litellm_params`` (an older LiteLLM form) move into it;
* ``general_settings.master_key`` is the HTTP API's admin key unless
  ``dispatcher_settings.api.admin_key`` is given (``config.admin_key``).

``router_settings.redis_*`` are LiteLLM's shared router cache. They are *not* taken as our
``redis_url``: that switches the dispatcher from embedded to fleet mode, where jobs wait for
worker processes, which must be a deliberate choice. The warning gives the URL to write.
"""

from __future__ import annotations

import difflib
import logging
import os
from typing import Any

log = logging.getLogger("dispatcher.config")

OUR_SECTIONS = (
    "model_list", "router_settings", "dispatcher_settings",
    "litellm_settings", "general_settings", "environment_variables",
)
# Top-level sections of LiteLLM proxy configs that mean nothing to a batch dispatcher.
LITELLM_ONLY_SECTIONS = frozenset({
    "finetune_settings", "files_settings", "guardrails", "mcp_servers", "mcp_aliases",
    "credential_list", "callback_settings", "assistant_settings", "search_tools",
    "vector_store_registry", "prompts", "pass_through_endpoints", "model_group_settings",
    "agent_list", "vector_stores", "alerting", "user_api_key_auth",
})
# litellm_settings keys that mean the same as a router_settings key here.
LITELLM_SETTINGS_TO_ROUTER = {
    "num_retries": "num_retries",
    "request_timeout": "timeout",
    "fallbacks": "fallbacks",
    "context_window_fallbacks": "context_window_fallbacks",
    "content_policy_fallbacks": "content_policy_fallbacks",
    "default_fallbacks": "default_fallbacks",
}
# general_settings keys that apply here; the rest is the proxy's own.
GENERAL_SETTINGS_USED = frozenset({"master_key"})
ROUTER_REDIS_KEYS = ("redis_url", "redis_host", "redis_port", "redis_password")
ENTRY_LEVEL_LIMITS = ("rpm", "tpm")


def adopt_litellm_sections(raw: dict, source: str) -> tuple[dict, list[str]]:
    """The document with LiteLLM's forms turned into ours, and the problems found (key paths)."""
    problems: list[str] = []
    raw = _triage_top_level(raw, source, problems)
    _set_environment_variables(raw.get("environment_variables"), problems)
    raw = _adopt_litellm_settings(raw, source)
    raw = _adopt_router_redis(raw, source)
    raw = _adopt_entry_level_limits(raw)
    _warn_unused_general_settings(raw.get("general_settings"), source)
    return raw, problems


def _warn_unused_general_settings(general: Any, source: str) -> None:
    if not isinstance(general, dict):
        return
    unused = sorted(str(key) for key in general if str(key) not in GENERAL_SETTINGS_USED)
    if unused:
        note = ("; its database_url is the proxy's own database, jobs live in "
                "dispatcher_settings.database_url") if "database_url" in unused else ""
        log.warning("%s: general_settings (%s) is LiteLLM proxy configuration, not used by "
                    "llm-dispatcher%s", source, ", ".join(unused), note)


def _triage_top_level(raw: dict, source: str, problems: list[str]) -> dict:
    ignored = []
    kept = {}
    for key, value in raw.items():
        name = str(key)
        if name in OUR_SECTIONS:
            kept[name] = value
        elif name == "include":
            problems.append(
                "include: including other files is not supported; copy their model_list entries "
                "(and settings) into this file"
            )
        elif name in LITELLM_ONLY_SECTIONS:
            ignored.append(name)
        else:
            close = difflib.get_close_matches(name, OUR_SECTIONS, n=1, cutoff=0.75)
            if close:
                problems.append(f"{name}: unknown section; did you mean {close[0]}?")
            else:
                ignored.append(name)
    if ignored:
        log.warning("%s: %s not used by llm-dispatcher (LiteLLM proxy sections are ignored)",
                    source, ", ".join(sorted(ignored)))
    return kept


def _set_environment_variables(variables: Any, problems: list[str]) -> None:
    if variables is None:
        return
    if not isinstance(variables, dict):
        problems.append("environment_variables: must be a mapping of NAME: value")
        return
    bad = []
    for name, value in variables.items():
        if value is not None and not isinstance(value, (str, int, float, bool)):
            bad.append(str(name))
    if bad:
        problems.append(
            f"environment_variables: {', '.join(bad)} must be a string or a number "
            "(an environment variable holds text), not a list or mapping"
        )
        return
    for name, value in variables.items():
        if value is not None:
            os.environ.setdefault(str(name), str(value))


def _adopt_litellm_settings(raw: dict, source: str) -> dict:
    settings = raw.get("litellm_settings")
    if not isinstance(settings, dict):
        return raw
    router = raw.get("router_settings")
    router = dict(router) if isinstance(router, dict) else router
    if router is None:
        router = {}
    if isinstance(router, dict):
        for key, router_key in LITELLM_SETTINGS_TO_ROUTER.items():
            if key in settings and router_key not in router:
                router[router_key] = settings[key]
        if router:
            raw = {**raw, "router_settings": router}
    unused = sorted(set(map(str, settings)) - set(LITELLM_SETTINGS_TO_ROUTER))
    if unused:
        log.warning("%s: litellm_settings: %s not used by llm-dispatcher", source, ", ".join(unused))
    return raw


def _adopt_router_redis(raw: dict, source: str) -> dict:
    router = raw.get("router_settings")
    if not isinstance(router, dict) or not any(key in router for key in ROUTER_REDIS_KEYS):
        return raw
    redis = {key: router[key] for key in ROUTER_REDIS_KEYS if key in router}
    router = {key: value for key, value in router.items() if key not in ROUTER_REDIS_KEYS}
    settings = raw.get("dispatcher_settings")
    if isinstance(settings, dict) and settings.get("redis_url"):
        log.warning("%s: router_settings: %s ignored; dispatcher_settings.redis_url is used",
                    source, ", ".join(redis))
    else:
        log.warning(
            "%s: router_settings: %s are LiteLLM's router cache and are not used; llm-dispatcher "
            "runs embedded (no Redis) until dispatcher_settings.redis_url is set, e.g. "
            "redis_url: %s (a fleet of workers then shares jobs and rate limits)",
            source, ", ".join(redis), _suggested_redis_url(redis),
        )
    return {**raw, "router_settings": router}


def _suggested_redis_url(redis: dict[str, Any]) -> str:
    if isinstance(redis.get("redis_url"), str) and redis["redis_url"].startswith(("redis://", "rediss://")):
        from dispatcher.config.secrets import redact_url

        return redact_url(redis["redis_url"]) or ""
    def literal(key: str, placeholder: str) -> str:
        value = redis.get(key)
        return placeholder if value is None or str(value).startswith("os.environ/") else str(value)

    host_text, port_text = literal("redis_host", "HOST"), literal("redis_port", "6379")
    password = ":PASSWORD@" if redis.get("redis_password") else ""
    return f"redis://{password}{host_text}:{port_text}/0"


def _adopt_entry_level_limits(raw: dict) -> dict:
    entries = raw.get("model_list")
    if not isinstance(entries, list):
        return raw
    adopted = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("litellm_params"), dict) and any(
            key in entry for key in ENTRY_LEVEL_LIMITS
        ):
            params = dict(entry["litellm_params"])
            entry = dict(entry)
            for key in ENTRY_LEVEL_LIMITS:
                if key in entry:
                    value = entry.pop(key)
                    params.setdefault(key, value)
            entry["litellm_params"] = params
        adopted.append(entry)
    return {**raw, "model_list": adopted}
