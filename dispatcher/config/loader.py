"""Find, read and validate the configuration; turn pydantic errors into key paths.

Lookup order: ``--config``, else ``$LLM_DISPATCH_CONFIG``, else ``./llm-dispatch.yaml``, else
the built-in default (one ``mock`` group, no keys). ``$LLM_DISPATCH_REDIS_URL`` and
``$LLM_DISPATCH_DATABASE_URL`` override the file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dispatcher.config.builtin import BUILTIN_CONFIG
from dispatcher.config.schema import DispatcherConfig, LiteLLMParams
from dispatcher.errors import ConfigError

log = logging.getLogger(__name__)

CONFIG_ENV = "LLM_DISPATCH_CONFIG"
REDIS_URL_ENV = "LLM_DISPATCH_REDIS_URL"
DATABASE_URL_ENV = "LLM_DISPATCH_DATABASE_URL"
DEFAULT_CONFIG_FILE = "llm-dispatch.yaml"


def find_config_file(explicit: str | os.PathLike | None) -> Path | None:
    """The config file to read, or None for the built-in default."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (given with --config)")
        return path
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (given by ${CONFIG_ENV})")
        return path
    local = Path(DEFAULT_CONFIG_FILE)
    return local if local.is_file() else None


def load_config(explicit: str | os.PathLike | None = None) -> tuple[DispatcherConfig, Path | None]:
    """Read and validate the configuration; returns it with the file it came from."""
    path = find_config_file(explicit)
    raw = _read_yaml(path) if path else yaml.safe_load(BUILTIN_CONFIG)
    config = parse_config(raw, source=str(path) if path else "built-in default")
    return apply_env_overrides(config), path


def parse_config(raw: Any, source: str = "config") -> DispatcherConfig:
    """Validate a parsed YAML document; ConfigError names every bad key path."""
    if raw is None:
        raise ConfigError(f"{source}: the file is empty; it needs at least a model_list")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = _adopt_litellm_sections(raw, source)
    try:
        config = DispatcherConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source} is invalid:\n" + format_validation_error(exc)) from None
    for index, entry in enumerate(config.model_list):
        ignored = entry.litellm_params.ignored_keys()
        if ignored:
            log.warning("%s: model_list[%d].litellm_params: %s not used by llm-dispatcher (not sent "
                        "to the provider)", source, index, ", ".join(ignored))
    unused = sorted(set(config.router_settings.model_extra or {}))
    if unused:
        log.warning("%s: router_settings: %s not used by llm-dispatcher", source, ", ".join(unused))
    return config


# litellm_settings keys that mean the same as a router_settings key here.
_LITELLM_SETTINGS_TO_ROUTER = {"num_retries": "num_retries", "request_timeout": "timeout"}


def _adopt_litellm_sections(raw: dict, source: str) -> dict:
    """Take what LiteLLM proxy sections say that applies here; say what is ignored.

    ``environment_variables`` are set for this process (the real environment wins), as the
    LiteLLM proxy does, so ``os.environ/NAME`` references to them resolve; ``litellm_settings``
    ``num_retries``/``request_timeout`` apply unless ``router_settings`` sets them.
    """
    variables = raw.get("environment_variables") or {}
    if isinstance(variables, dict):
        for name, value in variables.items():
            if value is not None:
                os.environ.setdefault(str(name), str(value))
    settings = raw.get("litellm_settings") or {}
    if isinstance(settings, dict):
        router = dict(raw.get("router_settings") or {})
        for key, router_key in _LITELLM_SETTINGS_TO_ROUTER.items():
            if key in settings and router_key not in router:
                router[router_key] = settings[key]
        if router:
            raw = {**raw, "router_settings": router}
        unused = sorted(set(settings) - set(_LITELLM_SETTINGS_TO_ROUTER))
        if unused:
            log.warning("%s: litellm_settings: %s not used by llm-dispatcher", source, ", ".join(unused))
    if raw.get("general_settings"):
        log.info("%s: section 'general_settings' is LiteLLM proxy configuration and is ignored", source)
    return raw


def format_validation_error(exc: ValidationError, limit: int = 10) -> str:
    """One line per problem: ``key.path[0].name: what is wrong``."""
    lines = []
    for error in exc.errors()[:limit]:
        path = _format_loc(error.get("loc", ()))
        message = error.get("msg", "invalid")
        message = message.removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "unknown key (check its spelling and the section it is in)"
            loc = error.get("loc", ())
            if len(loc) == 3 and loc[0] == "model_list" and loc[2] in LiteLLMParams.model_fields:
                message = f"unknown key here: {loc[2]} belongs in this entry's litellm_params"
        elif error.get("type") == "missing":
            message = "required key is missing"
        # Whole-file checks name their own key paths in the message.
        lines.append(f"  {path}: {message}" if path else f"  {message}")
    hidden = len(exc.errors()) - limit
    if hidden > 0:
        lines.append(f"  ... and {hidden} more")
    return "\n".join(lines)


def _format_loc(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _read_yaml(path: Path) -> Any:
    try:
        with path.open("r", encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def apply_env_overrides(config: DispatcherConfig) -> DispatcherConfig:
    """Environment variables win over the file for where state lives."""
    settings = config.dispatcher_settings
    updates: dict[str, Any] = {}
    if os.environ.get(REDIS_URL_ENV) is not None:
        updates["redis_url"] = os.environ[REDIS_URL_ENV] or None
    if os.environ.get(DATABASE_URL_ENV):
        updates["database_url"] = os.environ[DATABASE_URL_ENV]
    if not updates:
        return config
    return config.model_copy(
        update={"dispatcher_settings": settings.model_copy(update=updates)}
    )
