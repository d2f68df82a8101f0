"""How many times an error may be retried, and how long to wait before the next try.

``num_retries`` applies to retryable classes; ``retry_policy`` (or the group's entry in
``model_group_retry_policy``) overrides it per error class. Rate limits back off
exponentially with full jitter, never sooner than the provider's Retry-After; other errors
are retried after ``retry_after`` seconds (plus a little jitter so retries do not align).
"""

from __future__ import annotations

import random

from dispatcher.config.schema import DispatcherSettings, RouterSettings
from dispatcher.providers import errors as pe


class RetryPolicy:
    def __init__(
        self,
        router: RouterSettings,
        settings: DispatcherSettings,
        rng: random.Random | None = None,
    ):
        self._num_retries = router.num_retries
        self._min_wait = router.retry_after
        self._policy = _by_class(router.retry_policy)
        self._group_policy = {
            group: _by_class(policy) for group, policy in router.model_group_retry_policy.items()
        }
        self._base = settings.retry_backoff_base
        self._cap = settings.retry_backoff_cap
        self._rng = rng or random.Random()

    def retries_allowed(self, group: str, error: pe.ProviderError) -> int:
        for policy in (self._group_policy.get(group), self._policy):
            if policy:
                for cls in type(error).__mro__:
                    if cls in policy:
                        return policy[cls]
        return self._num_retries if error.retryable else 0

    def delay(self, error: pe.ProviderError, retries_done: int) -> float:
        """Seconds to wait before retry number ``retries_done + 1``."""
        if isinstance(error, pe.RateLimitError):
            ceiling = min(self._cap, self._base * (2 ** min(retries_done, 32)))
            wait = self._rng.uniform(ceiling / 2, ceiling)
        else:
            wait = self._rng.uniform(0, 0.25)
        wait = max(wait, self._min_wait)
        if error.retry_after is not None:
            wait = max(wait, min(error.retry_after, self._cap * 10))
        return wait


def _by_class(policy: dict[str, int]) -> dict[type, int]:
    mapping = {}
    for key, count in policy.items():
        cls = pe.RETRY_POLICY_KEYS.get(key)
        if cls is not None:
            mapping[cls] = count
    return mapping
