"""Which model group a job tries next when its group has failed it.

Order, as LiteLLM users expect: the primary group with its retries, then the group's specific
fallbacks, then ``default_fallbacks``; ``max_fallbacks`` caps how many groups one job tries.
By error class:

* context window exceeded -> only ``context_window_fallbacks`` (a group of the same size would
  fail the same way);
* content policy -> only ``content_policy_fallbacks``;
* other bad requests (malformed body, bad parameter) -> none: no group can fix the request;
* everything else, authentication included (a fallback group usually has another provider
  and key) -> ``fallbacks`` then ``default_fallbacks``.
"""

from __future__ import annotations

import json

from dispatcher.config.schema import RouterSettings
from dispatcher.providers import errors as pe


class FallbackPolicy:
    def __init__(self, router: RouterSettings):
        self._general = _merge(router.fallbacks)
        self._context = _merge(router.context_window_fallbacks)
        self._content = _merge(router.content_policy_fallbacks)
        self._default = list(router.default_fallbacks)
        self._max = router.max_fallbacks

    def candidates(self, group: str, error: pe.ProviderError | None) -> list[str]:
        """Fallback groups for ``group`` after ``error`` (None: the group is cooling down)."""
        if isinstance(error, pe.ContextWindowExceededError):
            return self._context.get(group, [])
        if isinstance(error, pe.ContentPolicyViolationError):
            return self._content.get(group, [])
        if isinstance(error, pe.BadRequestError):
            return []
        return self._general.get(group, []) + self._default

    def next_group(self, tried: list[str], error: pe.ProviderError | None) -> str | None:
        """The next group to try, or None; ``tried`` lists groups in the order tried.

        The chain is the primary group's (``tried[0]``): its specific fallbacks in order, then
        the defaults; the latest error decides which list applies.
        """
        if len(tried) - 1 >= self._max:
            return None
        for group in self.candidates(tried[0], error):
            if group not in tried:
                return group
        return None


def _merge(mappings: list[dict[str, list[str]]]) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for mapping in mappings:
        for source, targets in mapping.items():
            merged.setdefault(source, []).extend(targets)
    return merged


def groups_tried(job_groups_tried: str | None, current: str) -> list[str]:
    """The groups a job has tried so far (stored as a JSON list on the job)."""
    tried = json.loads(job_groups_tried) if job_groups_tried else []
    if not tried or tried[-1] != current:
        tried.append(current)
    return tried
