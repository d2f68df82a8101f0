"""Which model_list entries this dispatcher can serve, and what happens to the others.

An entry is skipped, with a warning naming it and why, when it cannot be built: a provider we
have no adapter for, a wildcard entry, an ``api_base`` that is not a usable URL (also when it
comes from ``os.environ/``, read here at start). The other entries work. Only when no entry is
left does loading fail, listing every entry's problem at once. Skipped entries keep no
deployment id, and the survivors keep the ids they would have had in the full list, so
adding an adapter later does not renumber deployments.
"""

from __future__ import annotations

import logging

from dispatcher.config.group_references import settle_group_references
from dispatcher.config.schema import DispatcherConfig
from dispatcher.deployments import deployment_problems, supported_prefixes_note
from dispatcher.errors import ConfigError

log = logging.getLogger("dispatcher.config")


def keep_servable(config: DispatcherConfig, source: str) -> DispatcherConfig:
    """The config without the entries that cannot be served; ConfigError when none can."""
    problems = deployment_problems(config)
    if len(problems) == len(config.model_list):
        raise ConfigError(
            f"{source}: no model_list entry can be served by llm-dispatcher:\n  "
            + "\n  ".join(str(problem) for problem in problems.values())
            + supported_prefixes_note(list(problems.values()))
        )
    kept = []
    positions: dict[str, int] = {}  # generated ids count every entry of the group, skipped or not
    for index, entry in enumerate(config.model_list):
        position = positions.get(entry.model_name, 0)
        positions[entry.model_name] = position + 1
        if index in problems:
            continue
        if entry.model_info.id is None:
            info = entry.model_info.model_copy(update={"id": f"{entry.model_name}#{position}"})
            entry = entry.model_copy(update={"model_info": info})
        kept.append(entry)
    if problems:
        log.warning(
            "%s: %d of %d model_list entries skipped (the others work):\n  %s%s",
            source, len(problems), len(config.model_list),
            "\n  ".join(str(problem) for problem in problems.values()),
            supported_prefixes_note(list(problems.values())),
        )
    kept_groups = {entry.model_name for entry in kept}
    skipped_groups = {config.model_list[i].model_name for i in problems} - kept_groups
    had_wildcard = any("*" in config.model_list[i].model_name for i in problems)
    servable = config.model_copy(update={"model_list": kept})
    try:
        return settle_group_references(servable, skipped_groups, had_wildcard, source)
    except ValueError as exc:
        raise ConfigError(f"{source} is invalid:\n  {exc}") from None
