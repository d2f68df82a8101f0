"""Find, read and validate the configuration; turn pydantic errors into key paths.

Lookup order: ``--config``, else ``$LLM_DISPATCH_CONFIG``, else ``./llm-dispatch.yaml``, else
the built-in default (one ``mock`` group, no keys). ``$LLM_DISPATCH_REDIS_URL`` and
``$LLM_DISPATCH_DATABASE_URL`` override the file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import ValidationError

from dispatcher.config import urls
from dispatcher.config.builtin import BUILTIN_CONFIG
from dispatcher.config.litellm_compat import adopt_litellm_sections
from dispatcher.config.schema import DispatcherConfig, LiteLLMParams
from dispatcher.config.servable import keep_servable
from dispatcher.config.yaml_safe import load_bounded_yaml
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
    raw = _read_yaml(path) if path else load_bounded_yaml(BUILTIN_CONFIG, "built-in default")
    config = parse_config(raw, source=str(path) if path else "built-in default")
    return apply_env_overrides(config), path


def parse_config(raw: Any, source: str = "config") -> DispatcherConfig:
    """Validate a parsed YAML document; ConfigError names every bad key path at once.

    Entries that cannot be served are dropped with a warning (config.servable), so the
    result builds into deployments whole.
    """
    if raw is None:
        raise ConfigError(f"{source}: the file is empty; it needs at least a model_list")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    raw, problems = adopt_litellm_sections(raw, source)
    lines = [f"  {problem}" for problem in problems]
    config = None
    try:
        config = DispatcherConfig.model_validate(raw)
    except ValidationError as exc:
        lines.append(format_validation_error(exc))
    if lines or config is None:
        raise ConfigError(f"{source} is invalid:\n" + "\n".join(lines))
    config = keep_servable(config, source)
    _warn_ignored_params(config, source)
    unused = sorted(set(config.router_settings.model_extra or {}))
    if unused:
        log.warning("%s: router_settings: %s not used by llm-dispatcher", source, ", ".join(unused))
    return config


def _warn_ignored_params(config: DispatcherConfig, source: str) -> None:
    """One warning per set of ignored litellm_params keys, naming the entries that have it."""
    entries_by_keys: dict[tuple[str, ...], list[str]] = {}
    for entry in config.model_list:
        ignored = tuple(entry.litellm_params.ignored_keys())
        if ignored:
            entries_by_keys.setdefault(ignored, []).append(entry.model_info.id or entry.model_name)
    for keys, entries in entries_by_keys.items():
        log.warning("%s: litellm_params %s of %s: not used by llm-dispatcher (not sent to the "
                    "provider)", source, ", ".join(keys), ", ".join(entries))


def format_validation_error(exc: ValidationError, limit: int = 50) -> str:
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
            return load_bounded_yaml(handle, str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config as UTF-8") from None


def apply_env_overrides(config: DispatcherConfig) -> DispatcherConfig:
    """Environment variables win over the file for where state lives.

    Their values are checked like the file's (``os.environ/NAME`` resolved too); a bad one is
    a ConfigError naming the variable.
    """
    settings = config.dispatcher_settings
    updates: dict[str, Any] = {}
    if os.environ.get(REDIS_URL_ENV) is not None:
        value = os.environ[REDIS_URL_ENV].strip()
        updates["redis_url"] = _checked(REDIS_URL_ENV, value, urls.redis_url) if value else None
    if os.environ.get(DATABASE_URL_ENV):
        updates["database_url"] = _checked(DATABASE_URL_ENV, os.environ[DATABASE_URL_ENV], urls.database_url)
    if not updates:
        return config
    return config.model_copy(
        update={"dispatcher_settings": settings.model_copy(update=updates)}
    )


def _checked(variable: str, value: str, check: Callable[[str], str]) -> str:
    try:
        return check(urls.from_environment(value))
    except ValueError as exc:
        raise ConfigError(f"${variable}: {exc}") from None
