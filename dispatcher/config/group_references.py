"""Settings that name model groups: fallbacks, per-group retry policies, the default model.

A name must be a group some model_list entry defines; every unknown name is reported at once.
Two cases are not typos and only warn: a group whose deployments were all skipped (it cannot
serve, so a fallback to it is dropped), and, in a file with a wildcard entry (``model_name:
'*'``, which LiteLLM matches against any name and we skip), a name the wildcard would have
served.
"""

from __future__ import annotations

import logging
from typing import Callable

from dispatcher.config.schema import DispatcherConfig

log = logging.getLogger("dispatcher.config")

FALLBACK_KEYS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")


def settle_group_references(
    config: DispatcherConfig, skipped_groups: set[str], had_wildcard: bool, source: str
) -> DispatcherConfig:
    """The config with references to unservable groups dropped (and named in a warning).

    Raises ValueError, one line per name, when names refer to groups nothing defines.
    """
    groups = {entry.model_name for entry in config.model_list}
    problems: list[str] = []
    dropped: list[str] = []

    def keep(name: str, where: str) -> bool:
        if name in groups:
            return True
        if name in skipped_groups:
            dropped.append(f"{where} '{name}' (its deployments were skipped)")
        elif had_wildcard:
            dropped.append(f"{where} '{name}' (only the skipped wildcard entry would serve it)")
        else:
            problems.append(
                f"{where} names model group '{name}', which no model_list entry defines "
                f"(known groups: {', '.join(sorted(groups))})"
            )
        return False

    router = config.router_settings
    updates: dict[str, object] = {}
    for key in FALLBACK_KEYS:
        updates[key] = [
            kept for i, mapping in enumerate(getattr(router, key))
            if (kept := _kept_mapping(mapping, f"router_settings.{key}[{i}]", keep))
        ]
    updates["default_fallbacks"] = [
        target for target in router.default_fallbacks if keep(target, "router_settings.default_fallbacks")
    ]
    updates["model_group_retry_policy"] = {
        group: policy for group, policy in router.model_group_retry_policy.items()
        if keep(group, "router_settings.model_group_retry_policy")
    }
    default_model = config.dispatcher_settings.default_model
    if default_model is not None and default_model not in groups:
        if default_model in skipped_groups:
            log.warning("%s: dispatcher_settings.default_model '%s' has no deployment that can run; "
                        "requests that name no model will be refused", source, default_model)
        else:
            problems.append(
                f"dispatcher_settings.default_model names model group '{default_model}', which no "
                f"model_list entry defines (known groups: {', '.join(sorted(groups))})"
            )
    if problems:
        raise ValueError("\n  ".join(problems))
    if dropped:
        log.warning("%s: dropped references to groups that cannot serve: %s", source, "; ".join(dropped))
    return config.model_copy(update={"router_settings": router.model_copy(update=updates)})


def _kept_mapping(
    mapping: dict[str, list[str]], where: str, keep: Callable[[str, str], bool]
) -> dict[str, list[str]]:
    kept = {}
    for group, targets in mapping.items():
        if not keep(group, where):
            continue
        servable = [target for target in targets if keep(target, f"{where}.{group}")]
        if servable:
            kept[group] = servable
    return kept
